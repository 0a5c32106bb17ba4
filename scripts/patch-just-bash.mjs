#!/usr/bin/env node
// Fixes two faults of just-bash 3.4.2 (the virtual tier's shell) in its bundle, after every
// `npm install` (package.json's postinstall). Runs on whatever Node the machine has: plain JavaScript.
//
// 1. A redirection whose file cannot be opened (a missing directory, a file used as one) threw out
//    of the whole script ("kiln: ENOENT"), losing the output before it. Bash fails that one
//    command with status 1 and "bash: FILE: No such file or directory", and goes on.
// 2. A brace range ({1..N}) stopped silently at 10,000 words, and every range at
//    maxBraceExpansionResults, so `echo {1..100000000} | wc -c` printed a wrong count and
//    succeeded. A range now stops only at maxBraceExpansionResults, and loudly: just-bash's
//    own limit error, which Kiln reports as `limit_exceeded`.
// 3. A command substitution inside an arithmetic or indirect expansion (`$((x))` where x holds
//    `a[$(cmd)]`, `${!x}`, `unset 'a[$(cmd)]'`) ran in the shell's first directory with its first
//    variables, not the command's cwd and variables.
// 4. OLDPWD was set to the first directory when the shell started; bash starts with it unset.
// 5. An input redirection (`< f/x`) said "No such file or directory" whatever the errno was.
// 6. `shopt -s` in one command changed the shell options of every later command of the sandbox
//    (each command is one exec and must start from the same options, as `bash -c` does).
// 7. `cd -` went to the shell's first home directory when OLDPWD was unset, and ignored an
//    OLDPWD the script set; bash uses $OLDPWD and says "OLDPWD not set".
// 8. `shift` past the arguments printed a message bash prints only with shift_verbose.
// 10. A loop left by `break` (or ended by `continue`) had the status of the command before it;
//     bash's is 0, break's and continue's own.
// 11. An unbound variable under `set -u` ended the script with status 1; bash's is 127.
// 9. A command of assignments only (`x=1`) kept the previous command's status; bash gives the
//    status of its last command substitution, or 0 when it has none.
// 12. A command substitution inside $(( )) ran without the script's functions (as a new shell).
// 13. A glob ending in a slash (`*/`) dropped the slash and matched files too.
//
// Each fix is an exact text replacement. If neither the text nor its replacement is there (another
// just-bash version), the script fails, naming it, rather than leaving a shell that silently
// differs. A fix already applied is skipped, so running it again changes nothing, and a bundle
// patched by an earlier version of this script gets the fixes added since.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkgDir = join(root, "node_modules", "just-bash");
const VERSION = "3.4.2";
const MARK = "/* kiln-patched */";

const version = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")).version;
if (version !== VERSION) {
  console.error(
    `kiln: just-bash is ${version}, scripts/patch-just-bash.mjs was written for ${VERSION}: check its fixes against the new version`,
  );
  process.exit(1);
}

const bundle = join(pkgDir, "dist", "bundle", "index.js");
const original = readFileSync(bundle, "utf8");
let text = original;

/** Replaces `before` (which must occur exactly `count` times) with `after`, unless already done. */
function replace(what, before, after, count = 1) {
  // Done already: the replacement is there (and, when it holds `before`, before is not left alone).
  if (after.includes(before) ? text.includes(after) : text.includes(after) && !text.includes(before)) return;
  const found = text.split(before).length - 1;
  if (found !== count) {
    console.error(`kiln: cannot patch just-bash (${what}): expected ${count} match(es), found ${found}`);
    process.exit(1);
  }
  text = text.split(before).join(after);
}

// 1. Redirections: an errno the file system raised becomes bash's message for that command alone.
replace(
  "redirection errors",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: JavaScript source to find and replace
  'catch(a){if(!s)throw a;return{error:L("",`bash: ${t}: cannot open redirect target\n`,1)}}',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: JavaScript source to find and replace
  'catch(a){let E=kilnRedirectError(a);if(E)return{error:L("",`bash: ${t}: ${E}\n`,1)};if(!s)throw a;return{error:L("",`bash: ${t}: cannot open redirect target\n`,1)}}',
);
replace(
  "redirection error messages",
  "async function Wn(e,t,n,r,s=!0){",
  'var kilnErrnoText={ENOENT:"No such file or directory",ENOTDIR:"Not a directory",EISDIR:"Is a directory",EACCES:"Permission denied",EPERM:"Operation not permitted",EROFS:"Read-only file system",ELOOP:"Too many levels of symbolic links"};function kilnRedirectError(a){let c=typeof a?.code=="string"?a.code:/^(E[A-Z]+):/.exec(String(a?.message))?.[1];return c&&Object.hasOwn(kilnErrnoText,c)?kilnErrnoText[c]:void 0}async function Wn(e,t,n,r,s=!0){',
);

// 2. Brace ranges: no hidden 10,000-word cap, and the real cap is a limit error, not a short list.
replace(
  "brace range cap",
  "function Jr(e,t,n,r){if(e.length>=n.maxResults)return!1;",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: JavaScript source to find and replace
  'function Jr(e,t,n,r){if(e.length>=n.maxResults)throw new x(`brace expansion result limit exceeded (${n.maxResults})`,"array_elements");',
);
replace("numeric brace range", "p<dr&&Jr(", "Jr(", 2);
replace("letter brace range", "m<dr&&Jr(", "Jr(", 2);

// 3. Substitutions in arithmetic and indirect expansions: the command's cwd and variables.
replace(
  "substitution cwd",
  "e.execFn(t.command,{signal:e.state.signal})",
  "e.execFn(t.command,{signal:e.state.signal,cwd:e.state.cwd,env:Object.fromEntries(e.state.env)})",
  2,
);
replace(
  "substitution cwd in expansions",
  "{signal:e.state.signal});",
  "{signal:e.state.signal,cwd:e.state.cwd,env:Object.fromEntries(e.state.env)});",
  2,
);

// 4. OLDPWD starts unset.
replace("OLDPWD at start", '["PWD",r],["OLDPWD",r],', '["PWD",r],');

// 5. Input redirections: bash's text for the errno the file system raised.
replace(
  "input redirection errors",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: JavaScript source to find and replace
  'try{c=await vn(e.fs,A),u=-1,m(S,{kind:"input",content:c})}catch{return p(L("",`bash: ${v}: No such file or directory\n`,1),g)}',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: JavaScript source to find and replace
  'try{c=await vn(e.fs,A),u=-1,m(S,{kind:"input",content:c})}catch(kilnE){return p(L("",`bash: ${v}: ${kilnRedirectError(kilnE)??"No such file or directory"}\n`,1),g)}',
);

// 6. Each exec starts from its own copy of the shopt options.
replace(
  "shopt options per exec",
  "options:{...this.state.options},hashTable:this.state.hashTable,",
  "options:{...this.state.options},shoptOptions:{...this.state.shoptOptions},hashTable:this.state.hashTable,",
);

// 7. cd - uses $OLDPWD.
replace(
  "cd - and OLDPWD",
  'let o=t.slice(i);if(o.length===0||o[0]==="~"?n=e.state.env.get("HOME")||"/":o[0]==="-"?(n=e.state.previousDir,r=!0):n=o[0],',
  'let o=t.slice(i);if(o[0]==="-"&&e.state.env.get("OLDPWD")===void 0)return D(`bash: cd: OLDPWD not set\n`);if(o.length===0||o[0]==="~"?n=e.state.env.get("HOME")||"/":o[0]==="-"?(n=e.state.env.get("OLDPWD"),r=!0):n=o[0],',
);

// 8. shift past the end: status 1, silently.
replace(
  "shift out of range",
  'let o=`bash: shift: shift count out of range\n`;if(e.state.options.posix)throw new st(1,"",o);return D(o)}',
  'let o=`bash: shift: shift count out of range\n`;if(e.state.options.posix)throw new st(1,"",o);return D("")}',
);

// 9. Assignment-only commands: count command substitutions, status 0 when none ran.
replace(
  "assignment status: count before",
  "let s=await nf(this.ctx,t);if(s.error)return s.error;",
  "let kilnSubst=this.ctx.state.kilnSubstCount??0;let s=await nf(this.ctx,t);if(s.error)return s.error;",
);
replace(
  "assignment status: result",
  'return this.ctx.state.expansionStderr="",L("",P,this.ctx.state.lastExitCode)}',
  'return this.ctx.state.expansionStderr="",L("",P,(this.ctx.state.kilnSubstCount??0)!==kilnSubst?this.ctx.state.lastExitCode:0)}',
);
replace(
  "assignment status: substitution ran",
  'e.state.lastExitCode=h,e.state.env.set("?",String(h))',
  'e.state.kilnSubstCount=(e.state.kilnSubstCount??0)+1,e.state.lastExitCode=h,e.state.env.set("?",String(h))',
);
replace(
  "assignment status: substitution failed",
  'if(p instanceof G){e.state.lastExitCode=p.exitCode,e.state.env.set("?",String(p.exitCode))',
  'if(p instanceof G){e.state.kilnSubstCount=(e.state.kilnSubstCount??0)+1,e.state.lastExitCode=p.exitCode,e.state.env.set("?",String(p.exitCode))',
);
replace(
  "assignment status: file substitution failed",
  'return e.state.lastExitCode=1,e.state.env.set("?","1"),""}let i=e.substitutionDepth',
  'return e.state.kilnSubstCount=(e.state.kilnSubstCount??0)+1,e.state.lastExitCode=1,e.state.env.set("?","1"),""}let i=e.substitutionDepth',
);

// 10. break and continue: status 0.
for (const [what, before, after] of [
  [
    "for loop break",
    'if(n.replace(l.stdout,l.stderr),l.action==="break")break;if(l.action==="continue")continue;',
    'if(n.replace(l.stdout,l.stderr),l.action==="break"){r=0;break}if(l.action==="continue"){r=0;continue}',
  ],
  [
    "arithmetic for loop break",
    'if(r.replace(a.stdout,a.stderr),a.action==="break")break;if(a.action==="continue"){',
    'if(r.replace(a.stdout,a.stderr),a.action==="break"){s=0;break}if(a.action==="continue"){s=0;',
  ],
  [
    "while loop break",
    'if(s.replace(h.stdout,h.stderr),h.action==="break")break;if(h.action==="continue")continue;',
    'if(s.replace(h.stdout,h.stderr),h.action==="break"){i=0;break}if(h.action==="continue"){i=0;continue}',
  ],
  [
    "until loop break",
    'if(s.replace(f.stdout,f.stderr),f.action==="break")break;if(f.action==="continue")continue;',
    'if(s.replace(f.stdout,f.stderr),f.action==="break"){i=0;break}if(f.action==="continue"){i=0;continue}',
  ],
]) {
  replace(what, before, after);
}

// 11. set -u: status 127.
replace(
  "unbound variable status",
  'if(i instanceof Ve)return r.append("stdout",i.stdout,i.internalOutputAccounting.stdout),r.append("stderr",i.stderr,i.internalOutputAccounting.stderr),n=1,',
  'if(i instanceof Ve)return r.append("stdout",i.stdout,i.internalOutputAccounting.stdout),r.append("stderr",i.stderr,i.internalOutputAccounting.stderr),n=127,',
);

// 12. A command substitution inside $(( )) ran as a new shell (execFn: no functions, no shell
//     options); it now runs as every other command substitution does, in this shell's state with
//     its variables, cwd and functions restored afterwards (just-bash's own `ns`). The code it
//     replaces (fix 3's) stays in place, unreachable, so that fix 3 still finds its text.
replace(
  "arithmetic substitution runs in this shell",
  'case"ArithCommandSubst":{if(e.execFn){',
  'case"ArithCommandSubst":{return Number.parseInt((await ns(e,t.command)).trim(),10)||0;if(e.execFn){',
);
replace(
  "arithmetic substitution text runs in this shell",
  'case"ArithCommandSubst":return e.execFn?',
  'case"ArithCommandSubst":return(await ns(e,t.command)).trim();return e.execFn?',
);

// 13. A glob ending in a slash (`*/`, `d*/`) dropped the slash and matched files too; bash's
//     matches directories only (links to them included) and keeps the slash.
replace(
  "glob with a trailing slash",
  'async expandSimple(t){let n=t.startsWith("/"),',
  'async expandSimple(t){if(t.length>1&&t.endsWith("/")&&this.hasGlobChars(t)){let k=t.replace(/\\/+$/,""),D=[];for(let m of await this.expandSimple(k))try{(await this.fs.stat(this.fs.resolvePath(this.cwd,m))).isDirectory&&D.push(m+"/")}catch(z){if(z instanceof x)throw z}return D}let n=t.startsWith("/"),',
);

if (text !== original) writeFileSync(bundle, text.startsWith(MARK) ? text : MARK + text);
