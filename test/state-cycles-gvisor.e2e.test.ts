/** Twenty pause/resume cycles lose nothing on gVisor: files, and the process with its state (see state-cycles.ts). */
import { cyclesSuite } from "./state-cycles.ts";

cyclesSuite(["gvisor"]);
