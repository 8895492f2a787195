/*
 * signreq: `sgprobe-collector sign-request` (docs/sigv4.md).
 *
 * A thin shell around lib/sigv4.c: flags, credentials from the AWS SDKs'
 * environment variables, the request from standard input, the signed request
 * to standard output. Everything it prints on standard error is built from
 * messages that never hold the secret access key.
 */
#include "signreq.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sgprobe/fileio.h"
#include "sgprobe/json.h"
#include "sgprobe/sigv4.h"

#define PROG "sgprobe-collector sign-request"

#define EXIT_FAIL  1
#define EXIT_USAGE 2

enum { OPT_REGION = 256, OPT_SERVICE, OPT_DATE, OPT_S3, OPT_VERBOSE, OPT_HELP };

static const struct option options[] = {
    {"region", required_argument, NULL, OPT_REGION},
    {"service", required_argument, NULL, OPT_SERVICE},
    {"date", required_argument, NULL, OPT_DATE},
    {"s3", no_argument, NULL, OPT_S3},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

typedef struct {
	const char *region;
	const char *service;
	const char *date;
	bool s3;
	bool verbose;
	bool help;
} args_t;

static void usage(FILE *f)
{
	fputs(
	    "usage: " PROG " --region R --service S [--date YYYYMMDDTHHMMSSZ] [--s3]\n"
	    "       [--verbose] < request.req\n"
	    "\n"
	    "Signs the raw HTTP request on standard input (the AWS SigV4 test suite's .req\n"
	    "format: request line, header lines, an empty line, the body) with AWS Signature\n"
	    "Version 4 and prints it signed (.sreq format): the lines as given, then any\n"
	    "X-Amz-Date and X-Amz-Security-Token lines it added, then Authorization.\n"
	    "\n"
	    "  --region R    the region of the credential scope (us-east-1)\n"
	    "  --service S   the service of the credential scope (monitoring, s3, ...)\n"
	    "  --date D      used when the request has no X-Amz-Date header; default: now, UTC\n"
	    "  --s3          S3's rules: the path is neither normalised nor encoded twice\n"
	    "  --verbose     the canonical request and the string to sign on standard error\n"
	    "\n"
	    "Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (optional).\n"
	    "Exit status: 0 signed, 1 out of memory or an output error, 2 bad usage or input.\n",
	    f);
}

static int parse_args(args_t *a, int argc, char **argv)
{
	int opt;

	memset(a, 0, sizeof(*a));
	/* 0, not 1: glibc then starts over, whatever an earlier getopt left behind. */
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (opt) {
		case OPT_REGION:
			a->region = optarg;
			break;
		case OPT_SERVICE:
			a->service = optarg;
			break;
		case OPT_DATE:
			a->date = optarg;
			break;
		case OPT_S3:
			a->s3 = true;
			break;
		case OPT_VERBOSE:
			a->verbose = true;
			break;
		case 'h':
		case OPT_HELP:
			a->help = true;
			break;
		default:
			fprintf(stderr, PROG ": unknown option or missing value: %s\n",
			        argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument: %s\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* Checks the flags once --help is ruled out. */
static int check_args(const args_t *a)
{
	char q[JSON_QUOTE_BUF];

	if (!a->region || !a->region[0]) {
		fprintf(stderr, PROG ": --region is required\n");
		return -EINVAL;
	}
	if (!a->service || !a->service[0]) {
		fprintf(stderr, PROG ": --service is required\n");
		return -EINVAL;
	}
	if (a->date && !sigv4_date_valid(a->date, strlen(a->date))) {
		fprintf(stderr, PROG ": --date: '%s' is not YYYYMMDDTHHMMSSZ\n",
		        json_quote(a->date, q, sizeof(q)));
		return -EINVAL;
	}
	return 0;
}

/* The value of an environment variable, or NULL when it is unset or empty. */
static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && v[0] ? v : NULL;
}

int signreq_main(int argc, char **argv)
{
	char err[SIGV4_ERR_MAX];
	char now[SIGV4_DATE_LEN + 1];
	sigv4_rawreq_t raw = {0};
	sigv4_signed_t sig = {0};
	sigv4_credentials_t cred;
	sigv4_params_t p;
	args_t a;
	char *text = NULL;
	char *sreq = NULL;
	size_t len = 0, sreq_len = 0;
	int status = EXIT_USAGE;
	int result;

	if (parse_args(&a, argc, argv)) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (a.help) {
		usage(stdout);
		return 0;
	}
	if (check_args(&a))
		return EXIT_USAGE;
	cred.access_key_id = env("AWS_ACCESS_KEY_ID");
	cred.secret_access_key = env("AWS_SECRET_ACCESS_KEY");
	cred.session_token = env("AWS_SESSION_TOKEN");
	if (!cred.access_key_id) {
		fprintf(stderr, PROG ": AWS_ACCESS_KEY_ID is not set\n");
		return EXIT_USAGE;
	}
	if (!cred.secret_access_key) {
		fprintf(stderr, PROG ": AWS_SECRET_ACCESS_KEY is not set\n");
		return EXIT_USAGE;
	}
	if (!a.date) {
		if (sigv4_date_now(now)) {
			fprintf(stderr, PROG ": cannot read the clock\n");
			return EXIT_FAIL;
		}
		a.date = now;
	}

	result = fileio_read_fd(STDIN_FILENO, SIGNREQ_MAX_INPUT, &text, &len);
	if (result == -EFBIG) {
		fprintf(stderr, PROG ": the request on standard input is larger than %u bytes\n",
		        SIGNREQ_MAX_INPUT);
		goto out;
	}
	if (result) {
		fprintf(stderr, PROG ": reading standard input: %s\n", strerror(-result));
		status = EXIT_FAIL;
		goto out;
	}
	result = sigv4_rawreq_parse(text, len, &raw, err, sizeof(err));
	if (result) {
		fprintf(stderr, PROG ": standard input: %s\n", err);
		status = result == -EINVAL ? EXIT_USAGE : EXIT_FAIL;
		goto out;
	}
	p.region = a.region;
	p.service = a.service;
	p.amz_date = a.date;
	p.keep_path = a.s3;
	result = sigv4_sign(&raw.req, &cred, &p, &sig, err, sizeof(err));
	if (result) {
		fprintf(stderr, PROG ": %s\n", err);
		status = result == -EINVAL ? EXIT_USAGE : EXIT_FAIL;
		goto out;
	}
	if (a.verbose)
		fprintf(stderr, "canonical request:\n%s\n\nstring to sign:\n%s\n",
		        sig.canonical_request, sig.string_to_sign);
	status = EXIT_FAIL;
	sreq = sigv4_sreq_format(&raw, &sig, cred.session_token, &sreq_len);
	if (!sreq) {
		fprintf(stderr, PROG ": out of memory\n");
		goto out;
	}
	if (fwrite(sreq, 1, sreq_len, stdout) != sreq_len || fflush(stdout)) {
		fprintf(stderr, PROG ": writing standard output: %s\n", strerror(errno));
		goto out;
	}
	status = 0;
out:
	free(sreq);
	sigv4_signed_dispose(&sig);
	sigv4_rawreq_dispose(&raw);
	fileio_free(text, len);
	return status;
}
