## grep basic
printf 'apple\nbanana\ncherry\n' > f; grep an f
## grep -i
printf 'Apple\napple\n' | grep -i APPLE
## grep -v
printf 'a\nb\nc\n' | grep -v b
## grep -n
printf 'x\ny\nx\n' | grep -n x
## grep -o
echo 'a1b22c333' | grep -o '[0-9]*'
## grep -E alternation
printf 'cat\ndog\nbird\n' | grep -E 'cat|dog'
## grep -r
mkdir -p d/e; echo needle > d/e/f; echo hay > d/g; grep -r needle d
## grep -l
echo x > a; echo y > b; grep -l x a b
## grep -w
printf 'foo\nfoobar\n' | grep -w foo
## grep -c multiple files
echo a > x; printf 'a\na\n' > y; grep -c a x y
## grep -q
echo abc | grep -q b && echo found
## grep fixed string
echo 'a.b' | grep -F '.'
## grep -A
printf '1\n2\n3\n4\n' | grep -A1 2
## sed substitute
echo hello | sed s/l/L/
## sed global
echo hello | sed s/l/L/g
## sed delete line
printf '1\n2\n3\n' | sed 2d
## sed print range
seq 10 | sed -n 3,5p
## sed in place
printf 'a\nb\n' > f; sed -i s/a/z/ f; cat f
## sed in place backup
echo a > f; sed -i.bak s/a/b/ f; cat f f.bak
## sed regex groups
echo 'john smith' | sed -E 's/(\w+) (\w+)/\2 \1/'
## sed append line
printf 'a\nb\n' | sed '1a\
inserted'
## sed multiple expressions
echo abc | sed -e s/a/A/ -e s/c/C/
## sed address regex
printf 'x1\ny2\nx3\n' | sed -n '/^x/p'
## awk print field
echo 'a b c' | awk '{print $2}'
## awk sum
seq 5 | awk '{s+=$1} END {print s}'
## awk -F
echo 'a:b:c' | awk -F: '{print $3}'
## awk NR
printf 'x\ny\nz\n' | awk 'NR==2'
## awk printf
echo 3 | awk '{printf "%03d\n", $1}'
## awk NF
echo 'a b c d' | awk '{print NF}'
## awk variables
awk -v n=5 'BEGIN {print n*2}'
## awk arrays
printf 'a\nb\na\n' | awk '{c[$1]++} END {print c["a"], c["b"]}'
## awk string functions
echo hello | awk '{print toupper($0), length($0), substr($0,2,3)}'
## awk from file
printf '1 2\n3 4\n' > f; awk '{print $1+$2}' f
## uniq -d
printf 'a\na\nb\n' | uniq -d
## wc on multiple files
echo a > x; printf 'a\nb\n' > y; wc -l x y
## head multiple files
echo 1 > a; echo 2 > b; head a b
## tail -c
printf 'abcdef' | tail -c 3; echo
## tr classes
echo 'Hello 123' | tr '[:lower:]' '[:upper:]'
## tr ranges
echo abc | tr 'a-c' 'x-z'
## cut -f with tab
printf 'a\tb\tc\n' | cut -f2,3
## sort numeric unique
printf '3\n1\n3\n2\n' | sort -nu
## unicode length
x='héllo'; echo ${#x}
## unicode through tools
echo 'naïve café' | tr ' ' '\n' | sort
## sed in place with star backup
echo a > f; sed -i'old_*' s/a/b/ f; cat f old_f
## uniq -c counts
printf 'x\nx\ny\n' | uniq -c
## head missing among files
echo a > a; head -n1 a nofile; echo $?
