/** Twenty pause/resume cycles lose nothing: virtual, namespace and oci (see state-cycles.ts). */
import { cyclesSuite } from "./state-cycles.ts";

cyclesSuite(["virtual", "namespace", "oci", "microvm"]);
