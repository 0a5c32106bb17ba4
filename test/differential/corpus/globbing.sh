## star glob
touch a.txt b.txt c.log; echo *.txt
## question glob
touch a1 a2 b1; echo a?
## bracket glob
touch a1 a2 a3; echo a[12]
## negated bracket
touch a1 a2 a3; echo a[!1]
## no match stays literal
echo *.nomatch
## nullglob
shopt -s nullglob; echo start *.nomatch end
## failglob
shopt -s failglob; echo *.nomatch; echo $?
## dotglob off
touch .h v; echo *
## dotglob on
shopt -s dotglob; touch .h v; echo *
## glob in subdir
mkdir d; touch d/x d/y; echo d/*
## glob directories only
mkdir d1 d2; touch f; echo */
## glob sorted
touch c b a; echo *
## globstar
shopt -s globstar; mkdir -p a/b; touch a/b/c.txt a/d.txt; echo **/*.txt
## quoted glob not expanded
touch a; echo "*"
## glob in for loop
touch x1 x2; for f in x*; do echo "got $f"; done
## glob with spaces in names
touch 'a b' c; for f in *; do echo "[$f]"; done
## brace expansion
echo {a,b,c}
## brace range
echo {1..5}
## brace range step
echo {0..10..5}
## brace letters
echo {a..e}
## brace nested
echo x{a,b{1,2}}y
## brace with mkdir
mkdir -p p/{x,y}; ls p
## tilde not home
echo ~nosuchuser
## extglob
shopt -s extglob; touch a.c b.h c.o; echo !(*.o)
## case glob
case foo.txt in *.txt) echo text;; *) echo other;; esac
## [[ pattern ]]
[[ abc == a* ]] && echo match
## [[ regex ]]
[[ abc123 =~ ^[a-z]+([0-9]+)$ ]] && echo "${BASH_REMATCH[1]}"
## glob character class
touch a1 b2 Cc; echo [[:upper:]]*
## glob in ls
touch a.md b.md; ls *.md
## glob no match to ls
ls *.zzz; echo $?
## rm glob
touch r1 r2 k; rm r*; ls
## glob directories with links
mkdir d1 d2; touch f; ln -s d1 ld; ln -s f lf; ln -s nowhere dl; for d in */; do echo "[$d]"; done; echo d*/
## glob subdirectories with slash
mkdir -p a/b a/c; touch a/f; echo a/*/; echo a/*/ | wc -w
