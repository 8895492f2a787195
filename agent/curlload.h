/*
 * curlload: libcurl, loaded when the agent first needs it.
 *
 * libcurl brings some thirty shared libraries with it (GnuTLS, Kerberos, LDAP,
 * libssh2, ...), and loading them costs about 4.5 MiB of resident memory before
 * main() runs. The agent needs libcurl only to talk to a collector or to the ECS
 * metadata endpoint; `--once` without `--push`, `health` and `--help` never do.
 * So sgprobe-agent is not linked with libcurl: curlload.c defines the libcurl
 * functions the agent calls, and each forwards to the real one, looked up in
 * libcurl.so.4 with dlopen() on first use. Callers use libcurl's own API and
 * headers unchanged; curl_global_init() is the point where a missing libcurl is
 * reported (CURLE_FAILED_INIT, and curl_easy_strerror() then says why).
 *
 * The state is the process's one dlopen handle: a process has one libcurl, as it
 * has one dynamic loader. Only the loop's thread may call these functions.
 * The collector, the tests and the benchmarks link libcurl directly.
 */
#ifndef SGPROBE_AGENT_CURLLOAD_H
#define SGPROBE_AGENT_CURLLOAD_H

#include <stddef.h>

/** The library loaded when nothing else was asked for. */
#define CURLLOAD_SONAME "libcurl.so.4"

/**
 * Loads libcurl from `soname` (a name for dlopen, or a path) and resolves every
 * function the agent uses. Returns 0, also when a library is already loaded
 * (then `soname` is not looked at), or -ENOENT with the loader's message in
 * `err` (always NUL-terminated when errlen > 0). After a failure the functions
 * fail as described above, and a later call may try again.
 */
int curlload_open(const char *soname, char *err, size_t errlen);

#endif
