package auth

import (
	"strings"

	"golang.org/x/net/publicsuffix"
)

// OrgDomain returns the DMARC Organizational Domain of a name (RFC 7489
// §3.2): the public suffix plus one label, found with the Public Suffix List
// compiled into golang.org/x/net/publicsuffix. Names that are themselves a
// public suffix, or that cannot be parsed, are their own organisational
// domain, so alignment then needs an exact match. Names are compared as
// given, lower-cased: IDNA mapping would need golang.org/x/text, which is not
// a dependency, so a U-label and its A-label are different names here.
func OrgDomain(name string) string {
	if org, ok := registrableDomain(name); ok {
		return org
	}
	return normDomain(name)
}

// registrableDomain is the public suffix plus one label, and false when the
// name has none (it is a public suffix itself, or malformed: empty labels,
// a leading dot).
func registrableDomain(name string) (string, bool) {
	d := strings.ToLower(name)
	if d == "" || strings.Contains(d, "..") {
		return "", false
	}
	org, err := publicsuffix.EffectiveTLDPlusOne(strings.TrimSuffix(d, "."))
	if err != nil {
		return "", false
	}
	return org, true
}

// aligned reports whether an authenticated domain is aligned with the From
// domain: equal under strict mode ("s"), sharing the organisational domain
// under relaxed mode (RFC 7489 §3.1.1 and §3.1.2).
func aligned(authDomain, fromDomain, mode string) bool {
	a, f := normDomain(authDomain), normDomain(fromDomain)
	if a == "" || f == "" {
		return false
	}
	if strings.EqualFold(mode, "s") {
		return a == f
	}
	return a == f || OrgDomain(a) == OrgDomain(f)
}
