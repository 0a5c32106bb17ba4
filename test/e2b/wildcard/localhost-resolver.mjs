/**
 * Loaded with `node --import` into the client process of
 * wildcard-domain.e2e.test.ts: names under `.localhost` resolve to the
 * loopback address, as RFC 6761 reserves them to (systemd's nss-myhostname
 * and browsers do it; glibc's `files dns` does not, so a test cannot count on
 * the machine). Every other name goes to the system resolver. The names
 * answered are kept in `globalThis.kilnResolvedNames`, so that the client can
 * say which ones it used.
 */
import dns from "node:dns";

const systemLookup = dns.lookup;
const answered = [];
globalThis.kilnResolvedNames = answered;

dns.lookup = function lookup(hostname, options, callback) {
  const cb = typeof options === "function" ? options : callback;
  const opts =
    typeof options === "function" ? {} : typeof options === "number" ? { family: options } : options;
  if (typeof hostname === "string" && /\.localhost\.?$/i.test(hostname) && opts?.family !== 6) {
    answered.push(hostname.toLowerCase());
    const address = { address: "127.0.0.1", family: 4 };
    process.nextTick(() => (opts?.all ? cb(null, [address]) : cb(null, address.address, address.family)));
    return {};
  }
  return systemLookup.call(this, hostname, options, callback);
};
