## exit status of false
false; echo $?
## exit status of true
true; echo $?
## command not found
nosuchcmd; echo $?
## command not found message
nosuchcmd
## exit code passes through
sh -c 'exit 3'; echo $?
## explicit exit
echo before; exit 4; echo after
## exit in subshell
( exit 5 ); echo $?
## return in function
f() { return 6; }; f; echo $?
## set -e stops
set -e; echo one; false; echo two
## set -e in condition
set -e; if false; then :; fi; echo survived
## set -u unset var
set -u; echo "$nosuchvar"; echo after
## set -o pipefail
set -o pipefail; false | true; echo $?
## without pipefail
false | true; echo $?
## PIPESTATUS
true | false | true; echo "${PIPESTATUS[@]}"
## || and &&
false || echo or; true && echo and
## negation
! false; echo $?
## error in substitution keeps going
x=$(false); echo "status $?"
## syntax error
echo 'if then' > s.sh; bash s.sh; echo $?
## bad option
ls --nosuchoption; echo $?
## wc missing file
wc -l nofile; echo $?
## head missing file
head nofile; echo $?
## grep no match status
echo abc | grep zzz; echo $?
## grep missing file
grep x nofile; echo $?
## sort missing file
sort nofile; echo $?
## mkdir missing parent
mkdir a/b; echo $?
## mkdir -p through file
touch f; mkdir -p f/g; echo $?
## mkdir under file
touch f; mkdir f/g; echo $?
## touch missing dir
touch a/b/c; echo $?
## rmdir missing
rmdir nodir; echo $?
## rm -r missing
rm -r nodir; echo $?
## cp dir into itself
mkdir d; cp -r d d/sub; echo $?
## mv dir into itself
mkdir d; mv d d/sub; echo $?
## chmod missing
chmod 644 nofile; echo $?
## cat several with one missing
echo a > a; cat a nofile; echo $?
## divide by zero
echo $((1/0)); echo after
## bad arithmetic
echo $((1 +)); echo after
## readonly variable
readonly r=1; r=2; echo $?
## unset function call
f() { echo f; }; unset -f f; f; echo $?
## trap on exit
trap 'echo trapped' EXIT; echo body
## error to stderr from function
f() { echo "f error" >&2; return 1; }; f; echo $?
## cd - without OLDPWD
cd -; echo $?
## wait without jobs
wait; echo $?
## test bad operator
[ 1 -zz 2 ]; echo $?
## numeric comparison with text
[ abc -eq 1 ]; echo $?
## kill nonexistent job
echo start; exit 0
## shift too far
set -- a; shift 2; echo $?
