package admin

import (
	"fmt"
	"testing"

	"sluice/config"
	"sluice/policy"
)

// sisimaiCategory is the published mapping from sisimai's reasons to the
// delivery event categories (docs/design-notes.md, "Delivery events").
var sisimaiCategory = map[string]policy.Category{
	"UserUnknown": policy.CatUserUnknown, "Filtered": policy.CatUserUnknown,
	"HasMoved": policy.CatUserUnknown, "Suspend": policy.CatUserUnknown,
	"MailboxFull": policy.CatMailboxFull,
	"MesgTooBig":  policy.CatTooBig, "ExceedLimit": policy.CatTooBig,
	"SpamDetected": policy.CatSpam, "VirusDetected": policy.CatSpam,
	"Blocked": policy.CatBlocked, "BadReputation": policy.CatBlocked, "RequirePTR": policy.CatBlocked,
	"PolicyViolation": policy.CatPolicy, "Rejected": policy.CatPolicy, "NoRelaying": policy.CatPolicy,
	"ContentError": policy.CatPolicy, "NotCompliantRFC": policy.CatPolicy,
	"SecurityError": policy.CatAuth, "AuthFailure": policy.CatAuth,
	"TooManyConn": policy.CatThrottled, "Speeding": policy.CatThrottled,
	"Greylisting": policy.CatGreylisted,
	"HostUnknown": policy.CatDNS, "NotAccept": policy.CatDNS,
	"SyntaxError": policy.CatOther, "SystemError": policy.CatOther, "SystemFull": policy.CatOther,
	"NetworkError": policy.CatOther, "MailerError": policy.CatOther, "Expired": policy.CatOther,
	"Undefined": policy.CatOther, "OnHold": policy.CatOther,
}

// categoryDisagreements lists the corpus rows (by reply text) where the
// category sluice derives differs from the one its sisimai reason maps
// to, each with the reason (docs/design-notes.md lists them too).
var categoryDisagreements = map[string]string{
	// sisimai's SecurityError covers authentication failures; these three
	// name none. A bare "Access denied" to RCPT is a policy refusal, an
	// explicit policy violation is policy, a spam verdict is spam.
	"550 5.7.1 <000001321defbd2a-788e31c8-2be1-422f-a8d4-cf7765cc9ed7-000000@email-bounces.amazonses.com>... Access denied": "a bare access denied at RCPT names no authentication: policy",
	"554 5.7.7 Email policy violation detected":                           "the text says policy violation",
	"554 5.7.1 Email cannot be delivered. Reason: Email flagged as Spam.": "the text says spam",
	// A missing PTR is what blocks the client; sisimai files it under the
	// sender (Rejected).
	"550 5.7.1 Connections not accepted from servers without a valid sender domain.neko Fix reverse DNS for 203.0.113.22": "the fix is the client's reverse DNS (PTR): blocked, as sisimai's RequirePTR",
	// RFC 5321 §4.5.3.1.6: a text line over 1000 octets; shrinking the
	// message does not help, fixing its line length does.
	"500 Line limit exceeded":                "a line-length limit (RFC 5321 §4.5.3.1.6), not the message size",
	"500 Remote server does not support TLS": "the failure is TLS (our require mode against a receiver without STARTTLS): tls is the specific category",
	// Authentication (SPF, DKIM, DMARC) is fixed in DNS and signing, not by
	// getting off a block list; the application needs to know which.
	"550 5.1.0 192.0.2.222 is not allowed to send from <example.net> per it's SPF Record. Please inspect your SPF settings, and try again. IB508 <http://x.co/srbounce>":                                                                                                                                                                                                                        "an SPF failure: auth",
	"550 5.7.26 Unauthenticated email from libsisimai.org is not accepted due to domain's DMARC policy. Please contact the administrator of libsisimai.org domain if this was a legitimate mail. Please visit https://support.google.com/mail/answer/2451690 to learn about the DMARC initiative. z2si1584129pfn.61 - gsmtp":                                                                    "a DMARC failure (Gmail 5.7.26): auth",
	"550 5.7.26 Unauthenticated email from example.jp is not accepted due to domain's DMARC policy. Please contact the administrator of example.jp domain if this was a legitimate mail. To learn about the DMARC initiative, go to https://support.google.com/mail/?p=DmarcRejection 98e67ed59e1d1-2c819db36a9si6099002a91.116 - gsmtp":                                                        "a DMARC failure (Gmail 5.7.26): auth",
	"550 5.7.509 Access denied, sending domain [NQ.EXAMPLE.JP] does not pass DMARC verification and has a DMARC policy of reject. [TY1P286MB3121.JPNP286.PROD.OUTLOOK.COM 2024-06-24T08:58:06.389Z 08DC93087F48F48A] [DB8PR06CA0025.eurprd06.prod.outlook.com 2024-06-24T08:58:06.520Z 08DC93D582D74098] [DB3PEPF0000885D.eurprd02.prod.outlook.com 2024-06-24T08:58:06.531Z 08DC908A5B97C2F4]": "a DMARC failure (Microsoft 5.7.509): auth",
	"550-5.7.1 Unauthenticated email from cpanel.com is not accepted due to domain's DMARC policy. Please contact the administrator of cpanel.com domain if this was a legitimate mail. Please visit https://support.google.com/mail/answer/2451690 to learn about the DMARC initiative. y13si1773519pll.31 - gsmtp":                                                                            "a DMARC failure: auth",
	"550-5.7.1 This message does not have authentication information or fails to pass authentication checks. To best protect our users from spam, the message has been blocked. Please visit https://support.google.com/mail/answer/81126#authentication for more information. 37si3479471pgw.590 - gsmtp":                                                                                      "no SPF or DKIM pass (Gmail): auth",
	// A doubtful sisimai label: a block list hit on the sender's domain
	// is no unknown user.
	"550 5.1.0 MXIN506 MailFrom domain is listed in Spamhaus. To request removal from this list see https: //www.spamhaus.org/query/lookup/ ;id=DLOkvMxsVeZooDLOkv7hl0;sid=DLOkvMxsVeZoo;mta=mx12-prd-nl1-vmo;d=20251027;t=122826[CET];ipsrc=#.#.#.#;": "a Spamhaus listing of the sender domain: blocked (sisimai's UserUnknown is doubtful)",
	"542 kijitora@example.com Rejected": "a bare \"Rejected\" names no cause; policy rather than guessing an unknown user",
	// Content refusals: sisimai says ContentError or PolicyViolation or
	// Filtered; for the application these are a content (spam) verdict.
	"500 5.6.1 Message content rejected": "a content refusal: spam, as the same words under 5.7.1 (SpamDetected)",
	"550 5.2.0 Message Filtered":         "a content filter, not the user-unknown that sisimai's Filtered mostly is: spam",
	"552-5.7.0 This message was blocked because its content presents a potential security issue. Please visit https://support.google.com/mail/answer/6590 to review our message content and attachment content guidelines. p4si4011367igr.94 - gsmtp": "Gmail's content (attachment) verdict: spam",
	"552 5.6.0 Headers too large (3 max)": "the header section is too large: too-big tells the application what to change",
}

// TestSisimaiCategories derives the category of every row of the public
// corpus from the classifier's verdict, as a bounced event does, and
// checks it against the row's sisimai reason through sisimaiCategory,
// or that the row is a documented disagreement.
func TestSisimaiCategories(t *testing.T) {
	t.Parallel()
	rows := readSisimai(t)
	o := policy.OptionsFrom(config.Default())
	o.Logger = quietLog()
	p, err := policy.New(o)
	if err != nil {
		t.Fatal(err)
	}
	matched, seen := 0, map[string]bool{}
	for _, row := range rows {
		want, ok := sisimaiCategory[row.reason]
		if !ok {
			t.Errorf("line %d: sisimai reason %s has no category", row.line, row.reason)
			continue
		}
		r := ParseReplyLine(row.text)
		r.Stage = row.stage
		got := policy.CategoryOf(r, p.Classify(r))
		why, listed := categoryDisagreements[row.text]
		seen[row.text] = seen[row.text] || listed
		switch {
		case got == want && listed:
			t.Errorf("%q now agrees (%s): drop it from categoryDisagreements", row.text, got)
		case got == want:
			matched++
		case listed:
			t.Logf("documented disagreement: %q -> %s, sisimai %s (%s): %s", row.text, got, row.reason, want, why)
		default:
			t.Errorf("%s:%d %s %q -> %s, sisimai %s -> %s", sisimaiCorpus, row.line, row.stage, row.text, got, row.reason, want)
			fmt.Printf("\t%q: \"%s (sisimai %s)\",\n", row.text, got, row.reason)
		}
	}
	for text := range categoryDisagreements {
		if !seen[text] {
			t.Errorf("documented disagreement %q is not in the corpus", text)
		}
	}
	t.Logf("categories: %d of %d rows agree with sisimai, %d documented disagreements", matched, len(rows), len(categoryDisagreements))
}
