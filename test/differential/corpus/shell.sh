## variables and quoting
x='a  b'; echo $x; echo "$x"
## default values
echo "${u:-def}" "${u-def2}"; v=; echo "[${v:-e}]" "[${v-e}]"
## assign default
echo "${w:=set}"; echo "$w"
## string length
s=hello; echo ${#s}
## substring
s=abcdef; echo ${s:2:3} ${s: -2}
## prefix and suffix removal
p=dir/sub/file.tar.gz; echo ${p##*/} ${p%%.*} ${p#*/} ${p%.*}
## replace in variable
s=aXbXc; echo ${s/X/-} ${s//X/-}
## case conversion
s=Hello; echo ${s^^} ${s,,}
## indirect expansion
name=target; target=value; echo ${!name}
## arrays
a=(x y z); echo ${a[1]} ${#a[@]} "${a[@]}"
## array append
a=(1); a+=(2 3); echo "${a[@]}"
## array indices
a=(a b c); echo "${!a[@]}"
## associative array
declare -A m; m[k]=v; m[j]=w; echo ${m[k]} ${#m[@]}
## unset array element
a=(1 2 3); unset 'a[1]'; echo "${a[@]}"
## arithmetic
echo $((2+3*4)) $((10%3)) $((2**10))
## arithmetic variables
i=5; ((i++)); echo $i; ((i+=10)); echo $i
## arithmetic comparison
(( 3 > 2 )) && echo bigger
## let
let x=4*5; echo $x
## for loop list
for i in a b c; do echo $i; done
## c-style for
for ((i=0; i<3; i++)); do echo $i; done
## while loop
i=0; while [ $i -lt 3 ]; do echo $i; i=$((i+1)); done
## until loop
i=0; until [ $i -ge 2 ]; do echo $i; i=$((i+1)); done
## break and continue
for i in 1 2 3 4 5; do [ $i = 2 ] && continue; [ $i = 4 ] && break; echo $i; done
## nested loops
for i in 1 2; do for j in a b; do echo $i$j; done; done
## loop over seq
for i in $(seq 3); do echo n$i; done
## loop over files
touch b a c; for f in *; do echo "f:$f"; done
## case statement
for v in apple 42 x; do case $v in [0-9]*) echo num;; a*) echo a-word;; *) echo other;; esac; done
## if elif else
x=2; if [ $x = 1 ]; then echo one; elif [ $x = 2 ]; then echo two; else echo many; fi
## test string ops
[ -z "" ] && echo empty; [ -n x ] && echo nonempty; [ a = a ] && echo eq; [ a != b ] && echo ne
## test numeric ops
[ 2 -gt 1 ] && [ 1 -le 1 ] && echo nums
## [[ ]] logic
[[ -n a && ( 1 -lt 2 || 0 -eq 1 ) ]] && echo logic
## functions with args
f() { echo "$# $1 $2"; }; f a b c
## local variables
x=global; f() { local x=local; echo $x; }; f; echo $x
## recursion
fact() { if [ $1 -le 1 ]; then echo 1; else echo $(( $1 * $(fact $(( $1 - 1 ))) )); fi; }; fact 5
## positional params
set -- a b c; echo $# $2; shift; echo $1
## "$@" vs "$*"
set -- 'a b' c; for x in "$@"; do echo "[$x]"; done; IFS=,; echo "$*"
## read with IFS
echo 'a:b:c' | { IFS=: read -r x y z; echo $y; }
## read -a
echo 'x y z' | { read -ra arr; echo ${arr[2]}; }
## mapfile
printf 'l1\nl2\n' | { mapfile -t L; echo ${#L[@]} ${L[1]}; }
## printf -v
printf -v out '%s=%d' k 7; echo $out
## subshell isolation
x=1; (x=2; echo $x); echo $x
## brace group shares state
x=1; { x=2; }; echo $x
## eval
cmd='echo evaluated'; eval "$cmd"
## export to child
export E=exported; sh -c 'echo $E'
## non-exported not in child
N=local; sh -c 'echo "[$N]"'
## env prefix
X=temp sh -c 'echo $X'; echo "[$X]"
## $? after assignment
false; x=1; echo $?
## string comparison in [[
[[ abc < abd ]] && echo less
## here-doc in function
f() { cat <<EOT
from f
EOT
}; f
## source a file
echo 'sourced=yes' > lib.sh; . ./lib.sh; echo $sourced
## bash script file
printf 'echo "args: $*"\n' > s.sh; bash s.sh 1 2
## script with shebang and chmod
printf '#!/bin/bash\necho ran\n' > s.sh; chmod +x s.sh; ./s.sh
## script without exec permission
printf 'echo ran\n' > s.sh; ./s.sh; echo $?
## type builtin
type cd; type echo
## command -v
command -v ls; command -v cd
## getopts
set -- -a -b val x; while getopts ab: o; do echo "$o ${OPTARG:-}"; done
## IFS splitting
s='1,2,3'; IFS=, read -ra p <<< "$s"; echo ${#p[@]}
## quoting preserves newlines
x=$(printf 'a\nb'); echo "$x"; echo $x
## single quotes literal
echo '$HOME `x` \n'
## escape sequences in $''
echo $'tab\there'
## arithmetic with hex and octal
echo $((0x1f)) $((010)) $((2#101))
## string repeat via printf
printf '%.0s-' {1..5}; echo
## pwd variable tracks cd
mkdir d; cd d; echo ${PWD##*/}
## OLDPWD after cd
mkdir d; cd d; cd ..; echo ${OLDPWD##*/}
## cd - returns
mkdir d; cd d; cd - > /dev/null; echo ${PWD##*/} | grep -c d
## dirs stack
mkdir a; pushd a > /dev/null; popd > /dev/null; echo ${PWD##*/} | grep -c a
## arithmetic in array index with substitution
mkdir sub; cd sub; a=(1 2); x="a[\$(pwd >&2; echo 0)]"; echo $((x)) 2>&1 | sed 's|.*/||'
## unset OLDPWD at start
echo "[${OLDPWD-unset}]"
## set -x tracing
set -x; echo traced; set +x
## true and colon
:; true; echo ok
## long pipeline of functions
up() { tr a-z A-Z; }; rev2() { rev; }; echo abc | up | rev2
## sleep zero
sleep 0; echo slept
## timeout command
timeout 5 echo quick
## time keyword output goes to stderr
x=$( { time echo t; } 2>/dev/null ); echo $x
## loop status after break and continue
for i in 1 2; do false; break; done; echo "break $?"; for i in 1 2; do false; continue; done; echo "continue $?"; while true; do false; break; done; echo "while $?"
## function in arithmetic substitution
f() { echo 3; }; echo $(( 2 * $(f) )); x=5; echo $(( $(x=7; echo 1) + x )); echo $x
