## write and read a file
echo hello > a.txt; cat a.txt
## append twice
echo one > f; echo two >> f; cat f; wc -l < f
## printf without newline
printf 'abc' > f; wc -c < f; cat f; echo
## overwrite truncates
echo long-line > f; echo x > f; cat f
## touch creates empty file
touch e; test -f e && echo file; wc -c < e
## touch keeps content
echo data > f; touch f; cat f
## mkdir and rmdir
mkdir d; test -d d && echo dir; rmdir d; test -e d || echo gone
## mkdir -p nested
mkdir -p a/b/c; ls -R a
## mkdir existing fails
mkdir d; mkdir d; echo $?
## mkdir -p existing ok
mkdir -p d; mkdir -p d; echo $?
## rmdir non-empty fails
mkdir d; touch d/f; rmdir d; echo $?
## rm file
touch f; rm f; ls
## rm missing
rm nofile; echo $?
## rm -f missing
rm -f nofile; echo $?
## rm dir without -r
mkdir d; rm d; echo $?
## rm -r tree
mkdir -p t/u; touch t/u/f t/g; rm -r t; ls
## rm -rf tree
mkdir -p t/u/v; rm -rf t; test -e t || echo removed
## cp file
echo x > f; cp f g; cat g
## cp into dir
mkdir d; echo x > f; cp f d/; ls d
## cp -r dir
mkdir -p s/t; echo 1 > s/t/f; cp -r s c; cat c/t/f
## cp dir without -r
mkdir s; cp s c; echo $?
## cp missing source
cp nofile g; echo $?
## cp onto itself
echo a > f; cp f f; echo $?
## cp into missing dir
echo a > f; cp f nodir/g; echo $?
## mv rename
echo a > f; mv f g; ls; cat g
## mv onto existing file
echo a > f; echo b > g; mv f g; cat g; ls
## mv into dir
mkdir d; touch f; mv f d; ls d
## mv missing
mv nofile x; echo $?
## mv dir
mkdir -p a/b; mv a z; ls -R z
## ln hard link shares content
echo a > f; ln f h; echo b >> h; cat f
## cat multiple files
echo 1 > a; echo 2 > b; cat a b
## cat missing file
cat nofile; echo $?
## cat a directory
mkdir d; cat d; echo $?
## cat through a file used as directory
echo x > f; cat f/g; echo $?
## head of a file
seq 20 > f; head -n 3 f
## tail of a file
seq 20 > f; tail -n 2 f
## tail -n +N
seq 5 > f; tail -n +3 f
## head -c
printf 'abcdef' > f; head -c 3 f; echo
## wc counts
printf 'a b\nc\n' > f; wc -l f; wc -w f; wc -c f
## wc stdin
printf 'one two three\n' | wc -w
## file sizes with wc
head -c 1000 /dev/zero > z; wc -c < z
## large file
seq 100000 > big; wc -l < big; tail -n 1 big
## many files
for i in $(seq 200); do echo $i > f$i; done; ls | wc -l; cat f150
## test -e -f -d
touch f; mkdir d; for p in f d nope; do test -e $p && echo "$p e"; test -f $p && echo "$p f"; test -d $p && echo "$p d"; done
## test -s empty and non-empty
touch e; echo x > n; test -s e || echo empty; test -s n && echo nonempty
## chmod and test -x
touch f; chmod +x f; test -x f && echo exec; chmod -x f; test -x f || echo noexec
## chmod octal and stat
touch f; chmod 640 f; stat -c '%a %n' f
## chmod directory mode
mkdir d; chmod 711 d; stat -c %a d
## ls -l modes
touch a; chmod 600 a; mkdir b; chmod 750 b; ls -l | cut -c1-10
## ls -d
mkdir d; touch d/f; ls -d d
## ls -a
touch .hidden vis; ls -a
## ls -A
touch .hidden vis; ls -A
## ls hidden not shown
touch .h v; ls
## ls missing
ls nofile; echo $?
## ls -1 sorted
touch c a b; ls -1
## ls -r
touch c a b; ls -r
## ls -R
mkdir -p x/y; touch x/f x/y/g; ls -R
## ls -F
mkdir d; touch f; chmod +x f; ln -s f l; ls -F
## ls -p
mkdir d; touch f; ls -p
## ls several operands
mkdir d e; touch d/1 e/2 f; ls d e f
## ls -S sorting
printf 1 > s; printf 12345 > l; printf 123 > m; ls -S
## ls with file operand
touch f; ls f
## stat size
printf 'hello' > f; stat -c %s f
## basename and dirname
basename /a/b/c.txt; basename /a/b/c.txt .txt; dirname /a/b/c.txt; dirname c.txt
## realpath of file
mkdir d; touch d/f; cd d; realpath f
## readlink -f
mkdir d; touch d/f; ln -s d/f l; readlink -f l
## pwd after cd
mkdir -p a/b; cd a/b; pwd
## cd .. and pwd
mkdir -p a/b; cd a/b; cd ..; pwd
## cd missing
cd nodir; echo $?
## cd into file
touch f; cd f; echo $?
## tee writes file and stdout
echo hi | tee out; cat out
## tee -a appends
echo 1 > f; echo 2 | tee -a f > /dev/null; cat f
## split by lines
seq 7 > f; split -l 3 f part; ls; cat partab
## find by name
mkdir -p a/b; touch a/x.txt a/b/y.txt a/z.log; find . -name '*.txt' | sort
## find -type d
mkdir -p a/b/c; find . -type d | sort
## find -type f
mkdir -p a; touch a/f g; find . -type f | sort
## find maxdepth
mkdir -p a/b; touch a/f a/b/g; find . -maxdepth 1 | sort
## find missing path
find nodir; echo $?
## tree of mixed content
mkdir -p p/q; echo 1 > p/q/r; ln -s q p/s; find p | sort
## file with spaces
echo x > 'a b'; ls; cat 'a b'
## file with dash prefix
echo x > ./-f; ls -- -f; cat -- -f
## dot files copy
mkdir s; echo 1 > s/.h; cp -r s t; ls -A t
## truncate via redirection
echo abc > f; : > f; wc -c < f
## write to /dev/null
echo hidden > /dev/null; echo shown
## read /dev/null
cat /dev/null; echo "[$?]"
## /dev/zero head
head -c 4 /dev/zero | od -An -tx1
## urandom length
head -c 64 /dev/urandom | wc -c
## which finds commands
which cat; which nosuchcmd; echo $?
## absolute path commands
/bin/echo abs; /usr/bin/printf '%s\n' printf
## test -c on devices
test -c /dev/null && echo chardev
## proc and bin exist
test -d /proc && test -d /usr/bin && test -d /bin && echo ok
## realpath missing
realpath nofile; echo $?
## cp -r keeps symlinks as links
mkdir s; echo x > s/t; ln -s t s/l; cp -r s c; test -L c/l && echo link
## cp follows a symlink source
echo x > t; ln -s t l; cp l c; test -L c || echo regular
