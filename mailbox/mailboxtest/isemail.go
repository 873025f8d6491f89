// Package mailboxtest loads the public address test suite for the tests
// of mailbox and of the inbound server.
package mailboxtest

import (
	"encoding/xml"
	"os"
	"strings"
	"testing"

	"sluice/mailbox"
)

// isemailTest is one case of dominicsayers/isemail's tests.xml.
type isemailTest struct {
	ID        string `xml:"id,attr"`
	Address   string `xml:"address"`
	Category  string `xml:"category"`
	Diagnosis string `xml:"diagnosis"`
}

// IsEmailSuite loads the isemail torture suite from the shared test data
// (/work/shared/testdata/email-addresses, BSD-licensed): each address with
// its control characters restored (stored as U+2400+n, see the file's
// notes), and whether an SMTP envelope accepts it. The envelope accepts
// what isemail calls valid, DNS warnings (no DNS here) and RFC 5321-only
// forms, plus the misplaced dots of an unquoted local part (Postfix
// compatibility, see Parse); CFWS, deprecated and RFC 5322-only forms and
// errors cannot appear in an SMTP path and are refused.
func IsEmailSuite(t testing.TB) []IsEmailCase {
	t.Helper()
	raw, err := os.ReadFile("/work/shared/testdata/email-addresses/tests.xml")
	if err != nil {
		t.Skipf("shared test data not available: %v", err)
	}
	var suite struct {
		Tests []isemailTest `xml:"test"`
	}
	if err := xml.Unmarshal(raw, &suite); err != nil {
		t.Fatal(err)
	}
	if len(suite.Tests) < 150 {
		t.Fatalf("only %d tests parsed", len(suite.Tests))
	}
	var out []IsEmailCase
	for _, tc := range suite.Tests {
		addr := strings.Map(func(r rune) rune {
			if r >= 0x2400 && r < 0x2420 {
				return r - 0x2400
			}
			return r
		}, tc.Address)
		c := IsEmailCase{ID: tc.ID, Addr: addr, Why: tc.Category + "/" + tc.Diagnosis}
		switch tc.Category {
		case "ISEMAIL_VALID_CATEGORY", "ISEMAIL_DNSWARN", "ISEMAIL_RFC5321":
			c.Valid = true
		}
		switch tc.Diagnosis {
		case "ISEMAIL_ERR_DOT_START", "ISEMAIL_ERR_DOT_END", "ISEMAIL_ERR_CONSECUTIVEDOTS":
			if at := strings.LastIndexByte(addr, '@'); at > 0 && !strings.HasPrefix(addr, `"`) && validDomain(addr[at+1:]) {
				c.Valid, c.Why = true, c.Why+" (legacy dots in the local part, accepted)"
			}
		}
		out = append(out, c)
	}
	return out
}

// IsEmailCase is one address of the suite.
type IsEmailCase struct {
	ID, Addr, Why string
	Valid         bool
}

// validDomain reports whether d is a valid envelope domain.
func validDomain(d string) bool {
	_, err := mailbox.Parse("x@" + d)
	return err == nil
}
