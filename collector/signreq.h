/*
 * signreq: `sgprobe-collector sign-request`, AWS Signature Version 4 on the
 * command line, to see how a request is signed and debug a signature AWS
 * refuses (docs/sigv4.md).
 */
#ifndef SGPROBE_SIGNREQ_H
#define SGPROBE_SIGNREQ_H

/** Longest request read from standard input, in bytes. */
#define SIGNREQ_MAX_INPUT (1u << 20)

/**
 * Runs `sign-request --region R --service S [--date YYYYMMDDTHHMMSSZ] [--s3]
 * [--verbose]` with argv[0] "sign-request": reads a raw request (the AWS test
 * suite's `.req` format) on standard input, signs it with the credentials of
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, and prints
 * the signed request (`.sreq` format) on standard output. Returns the exit
 * status: 0 signed, 1 out of memory or an output error, 2 a usage or input
 * error (with a message on standard error that never shows the secret).
 */
int signreq_main(int argc, char **argv);

#endif
