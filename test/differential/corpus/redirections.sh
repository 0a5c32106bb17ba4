## stdout to file
echo out > f; cat f
## stderr to file
ls nofile 2> err; echo $?; cat err
## both to file
{ echo out; echo err >&2; } > both 2>&1; cat both
## &> redirect
{ echo o; echo e >&2; } &> f; cat f
## stderr to stdout in pipe
{ echo o; echo e >&2; } 2>&1 | sort
## stdout to stderr
echo to-err >&2
## discard stderr
ls nofile 2>/dev/null; echo $?
## redirection order matters
{ echo e >&2; } 2>&1 >/dev/null | cat
## input redirection
printf 'a\nb\n' > f; wc -l < f
## here-string
cat <<< "here string"
## here-doc
cat <<EOT
line1
line2
EOT
## here-doc with expansion
x=world; cat <<EOT
hello $x
EOT
## quoted here-doc no expansion
x=world; cat <<'EOT'
hello $x
EOT
## here-doc with tabs stripped
cat <<-EOT
	indented
	EOT
## redirect to missing dir
echo before; echo x > nodir/f; echo after $?
## append to missing dir
echo x >> nodir/f; echo $?
## redirect through a file as dir
echo a > f; echo b > f/g; echo $?
## input from missing file
cat < nofile; echo $?
## input through a file as dir
echo a > f; cat < f/x; echo $?
## redirect in function
f() { echo x > nodir/f; echo in-f $?; }; f; echo after
## redirect in loop
for i in 1 2; do echo $i > nodir/f; done; echo done $?
## redirect in subshell
( echo x > nodir/f ); echo after $?
## redirect in braces
{ echo x > nodir/f; }; echo after $?
## redirect in command substitution
v=$(echo x > nodir/f); echo "[$v] $?"
## redirect with if
if echo x > nodir/f; then echo yes; else echo no; fi
## redirect to directory
mkdir d; echo x > d; echo $?
## set -e and failed redirect
set -e; echo x > nodir/f; echo notreached
## exec redirection to file
exec 3> f; echo via3 >&3; exec 3>&-; cat f
## read from fd
echo line > f; exec 4< f; read -r l <&4; echo "$l"
## noclobber
set -C; echo a > f; echo b > f; echo $?; cat f
## force clobber
set -C; echo a > f; echo b >| f; cat f
## multiple outputs
echo x > a > b; cat a; cat b
## redirect before command
> f echo first; cat f
## redirect of a pipeline block
{ echo 1; echo 2; } | { read a; read b; echo "$b$a"; }
## while read with input redirect
printf '1\n2\n3\n' > f; while read -r n; do echo "n=$n"; done < f
## output of loop redirected
for i in 3 1 2; do echo $i; done > f; sort f
## append in loop
for i in a b c; do echo $i >> f; done; cat f
## stderr of missing command
nosuchcommand 2> err; echo $?; wc -l < err
## pipe stderr only
ls nofile 2>&1 >/dev/null | wc -l
## /dev/stderr
echo to-stderr > /dev/stderr
## /dev/stdout
echo to-stdout > /dev/stdout
## cat from stdin dash
echo piped | cat -
## redirect append creates
echo new >> newfile; cat newfile
## here-doc into file
cat > f <<EOT
alpha
beta
EOT
wc -l < f
## empty here-string
cat <<< ""; echo end
