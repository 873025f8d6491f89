package inbound

import (
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/emersion/go-smtp"
)

// The exported session methods report each outcome to OnResult and
// delegate to the real handlers, so the handlers keep their many early
// returns and the hook sees every one of them.

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	return ss.g.report("mail", ss.mail(from, opts), 0)
}

func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	return ss.g.report("rcpt", ss.rcpt(to, opts), 0)
}

func (ss *session) Data(r io.Reader) error {
	start := ss.g.o.Now()
	err := ss.data(r)
	return ss.g.report("data", err, ss.g.o.Now().Sub(start))
}

// reasons name the refusals for metrics: a fixed set, so that label
// cardinality stays bounded whatever clients send.
var reasons = map[*smtp.SMTPError]string{
	errAuthRequired: "relay-denied",
	errEncryption:   "encryption-required",
	errRate:         "rate-limited",
	errBadAddr:      "bad-address",
	errBadSender:    "bad-address",
	errMailSyntax:   "bad-address",
	errRcptSyntax:   "bad-address",
	errLiteral:      "address-literal",
	errNeedUTF8:     "smtputf8-required",
	errFromDomain:   "sender-not-allowed",
	errSuppressed:   "suppressed",
	errTooManyRcpts: "too-many-recipients",
	errSequence:     "bad-sequence",
	errHeloAfterTLS: "bad-sequence",
	errBareLF:       "bare-lf",
	errTooBig:       "too-big",
	errHeaderTooBig: "header-too-big",
	errLineTooLong:  "line-too-long",
	errLoop:         "loop",
	errNoSpace:      "no-space",
	errInFlight:     "inflight-limit",
	errTempLocal:    "local-error",
}

// report calls OnResult for a DATA outcome, and for a refusal at MAIL or
// RCPT; a successful MAIL or RCPT is not a message outcome.
func (g *generation) report(stage string, err error, latency time.Duration) error {
	hook := g.o.OnResult
	if hook == nil {
		return err
	}
	var se *smtp.SMTPError
	switch {
	case err == nil && stage != "data":
		return err
	case errors.As(err, &se) && se.Code/100 == 2:
		hook(true, "", latency)
		return err
	case err == nil:
		hook(true, "", latency)
		return err
	}
	reason, ok := reasons[se]
	if !ok {
		// A refusal built by the Checker (auth enforce) or another
		// handler, or a Submit refusal that is not an SMTP reply (an
		// idempotency key reused): name it by stage and code, still a
		// bounded set.
		code := 0
		if se != nil {
			code = se.Code
		}
		reason = stage + "-" + strconv.Itoa(code)
	}
	hook(false, reason, latency)
	return err
}
