## symlink read through
echo data > t; ln -s t l; cat l
## symlink write through
echo a > t; ln -s t l; echo b > l; cat t
## append through symlink
echo a > t; ln -s t l; echo b >> l; cat t
## readlink
ln -s target l; readlink l
## dangling symlink test
ln -s nowhere l; test -L l && echo link; test -e l || echo dangling
## write through dangling creates target
ln -s newtarget l; echo x > l; cat newtarget
## symlink to dir
mkdir d; touch d/f; ln -s d l; ls l; ls l/
## cd through symlink
mkdir d; ln -s d l; cd l; pwd
## cd -P through symlink
mkdir d; ln -s d l; cd -P l; pwd
## ls -l shows link
touch t; ln -s t l; ls -l l | cut -c1; ls -l l | grep -o 'l -> t'
## ls -la link mode
touch t; ln -s t l; ls -la | grep ' l -> ' | cut -c1-10
## rm symlink keeps target
echo x > t; ln -s t l; rm l; cat t; ls
## mv symlink
touch t; ln -s t l; mv l m; readlink m
## cp symlink copies content
echo x > t; ln -s t l; cp l c; test -L c || echo regular; cat c
## cp -P keeps link
echo x > t; ln -s t l; cp -P l c 2>/dev/null && readlink c || echo no-P
## relative symlink in subdir
mkdir d; echo x > d/t; ln -s t d/l; cat d/l
## symlink chain
echo x > t; ln -s t a; ln -s a b; cat b; readlink b
## symlink loop
ln -s a b; ln -s b a; cat a; echo $?
## ln -s existing fails
touch t l; ln -s t l; echo $?
## ln -sf replaces
touch t u; ln -s t l; ln -sf u l; readlink l
## test -h
ln -s x l; test -h l && echo h
## sed -i on symlink
echo a > t; ln -s t l; sed -i s/a/b/ l; cat t; test -L l || echo replaced
## find -type l
touch t; ln -s t l; find . -type l
## stat of link
ln -s t l; stat -c %F l
## realpath through link
mkdir d; touch d/f; ln -s d l; cd l; realpath f
## absolute symlink
mkdir d; echo x > d/f; ln -s "$PWD/d/f" l; cat l
## symlink to parent dir
mkdir -p a/b; ln -s .. a/b/up; ls a/b/up
## rm -r dir with symlink inside keeps target
mkdir d; echo keep > t; ln -s ../t d/l; rm -r d; cat t
## hard link count via stat
touch f; ln f g; stat -c %h f
## readlink of non-link
touch f; readlink f; echo $?
