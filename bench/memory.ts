/** Child process of the benchmark: idle memory per sandbox (needs --expose-gc). */
import { benchVirtualMemory } from "./virtual.ts";

process.stdout.write(`${JSON.stringify(await benchVirtualMemory())}\n`);
process.exit(0);
