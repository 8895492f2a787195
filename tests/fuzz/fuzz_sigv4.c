/*
 * libFuzzer target of what `sgprobe-collector sign-request` does with its
 * standard input, and of CloudWatch's XML error reader: the raw request parser
 * (sigv4_rawreq_parse), the signer on whatever it accepts (sigv4_sign), the
 * signed request's formatter (sigv4_sreq_format), and cw_xml_error on the same
 * bytes. A refusal must leave a non-empty message; a signature must be 64
 * lowercase hex digits and the formatted request must start with the input's
 * request line. Anything else abort()s; memory errors, leaks and undefined
 * behaviour are caught by the sanitizers.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sgprobe/cloudwatch.h"
#include "sgprobe/sigv4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_sigv4: %s\n", what);
	abort();
}

static void check_signature(const char *authz)
{
	const char *sig = strstr(authz, "Signature=");
	size_t i;

	if (!sig)
		fail("no Signature= in the Authorization header");
	sig += strlen("Signature=");
	for (i = 0; i < 64; i++)
		if (!((sig[i] >= '0' && sig[i] <= '9') || (sig[i] >= 'a' && sig[i] <= 'f')))
			fail("the signature is not 64 lowercase hex digits");
	if (sig[64])
		fail("the signature is longer than 64 hex digits");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const sigv4_credentials_t cred = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
	                                  "session-token"};
	sigv4_params_t p = {"us-east-1", "monitoring", "20150830T123600Z", false};
	char err[256], code[64], msg[128];
	sigv4_rawreq_t raw;
	sigv4_signed_t sig;
	size_t len, line;
	char *sreq;
	int result;

	/* CloudWatch's answer is as untrusted as a request. */
	cw_xml_error((const char *)data, size, code, sizeof(code), msg, sizeof(msg));
	if (!memchr(code, '\0', sizeof(code)) || !memchr(msg, '\0', sizeof(msg)))
		fail("cw_xml_error left a string unterminated");

	memset(err, 'X', sizeof(err));
	if (sigv4_rawreq_parse((const char *)data, size, &raw, err, sizeof(err))) {
		if (!memchr(err, '\0', sizeof(err)) || !err[0])
			fail("sigv4_rawreq_parse failed without a message");
		return 0;
	}
	for (p.keep_path = false;; p.keep_path = true) {
		memset(&sig, 0, sizeof(sig));
		memset(err, 'X', sizeof(err));
		result = sigv4_sign(&raw.req, &cred, &p, &sig, err, sizeof(err));
		if (result) {
			if (!memchr(err, '\0', sizeof(err)) || !err[0])
				fail("sigv4_sign failed without a message");
		} else {
			check_signature(sig.authorization);
			sreq = sigv4_sreq_format(&raw, &sig, cred.session_token, &len);
			if (!sreq)
				fail("sigv4_sreq_format failed");
			for (line = 0; line < size && data[line] != '\r' && data[line] != '\n';
			     line++)
				;
			if (len < line || memcmp(sreq, data, line))
				fail("the signed request does not start with the request line");
			free(sreq);
		}
		sigv4_signed_dispose(&sig);
		if (p.keep_path)
			break;
	}
	sigv4_rawreq_dispose(&raw);
	return 0;
}
