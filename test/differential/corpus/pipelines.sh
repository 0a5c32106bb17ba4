## simple pipe
echo hello | tr a-z A-Z
## three-stage pipe
printf 'b\na\nc\n' | sort | head -n 2
## pipe into while
printf '1\n2\n' | while read -r x; do echo "x$x"; done
## pipe subshell vars lost
x=1; echo 2 | read x; echo $x
## pipe with grep -c
printf 'a\nb\na\n' | grep -c a
## sort uniq count
printf 'b\na\nb\nc\nb\n' | sort | uniq -c
## sort -n
printf '10\n9\n100\n' | sort -n
## sort -r
printf 'a\nc\nb\n' | sort -r
## sort -k
printf 'x 3\ny 1\nz 2\n' | sort -k2 -n
## sort -u
printf 'a\nb\na\n' | sort -u
## sort -t field
printf 'a:3\nb:1\n' | sort -t: -k2
## cut fields
echo 'a,b,c' | cut -d, -f2
## cut chars
echo abcdef | cut -c2-4
## tr delete
echo 'hello world' | tr -d o
## tr squeeze
echo 'aaabbb' | tr -s ab
## xargs
printf 'a\nb\n' | xargs echo
## xargs -n1
printf 'a b c' | xargs -n1 echo
## command substitution
echo "count: $(printf 'a\nb\n' | wc -l)"
## nested substitution
echo $(echo $(echo deep))
## backticks
echo `echo tick`
## process substitution
diff <(echo a) <(echo a) && echo same
## pipe exit status last
false | true; echo $?
## tee in pipeline
echo x | tee f | tr x y; cat f
## head closes pipe
seq 1000 | head -n 2
## tail of pipe
seq 10 | tail -n 3
## rev
echo abc | rev
## tac
printf '1\n2\n3\n' | tac
## nl
printf 'a\nb\n' | nl
## paste
printf '1\n2\n' > a; printf 'x\ny\n' > b; paste a b
## paste -d
printf '1\n2\n' > a; printf 'x\ny\n' > b; paste -d, a b
## comm
printf 'a\nb\n' > x; printf 'b\nc\n' > y; comm x y
## join
printf '1 a\n2 b\n' > x; printf '1 A\n2 B\n' > y; join x y
## fold
echo abcdefghij | fold -w 3
## expand tabs
printf 'a\tb\n' | expand -t 4
## od
printf 'AB' | od -An -c
## base64 round trip
echo hello | base64 | base64 -d
## md5sum
echo hello | md5sum
## sha256sum
printf abc | sha256sum
## seq formats
seq 3; seq 2 2 8; seq -s, 3
## printf formats
printf '%05d|%-4s|%x|%.2f\n' 42 ab 255 3.14159
## printf repeat
printf '%s-' a b c; echo
## echo -n and -e
echo -n no-newline; echo; echo -e 'a\tb'
## expr
expr 3 + 4; expr 10 / 3
## date with fixed input
date -u -d @0 +%Y-%m-%d
## diff files
printf 'a\nb\n' > x; printf 'a\nc\n' > y; diff x y; echo $?
## diff -u
printf 'a\n' > x; printf 'b\n' > y; diff -u x y | tail -n 2
