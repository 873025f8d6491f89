package auth

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"time"
)

// Our DKIM verifier (RFC 6376 §6.1). go-msgauth v0.7.0 (dkim/verify.go)
// disagrees with other verifiers (Mail::DKIM, dkimpy) on points that
// decide the alignment pre-check, and they are not reachable from outside:
//   - it compares the raw i= with d=, so a quoted-printable i=
//     ("joe=40example.com", RFC 6376 §3.5 makes i= dkim-quoted-printable)
//     and an i= or d= that differ only in case fail as "domain mismatch",
//     before any cryptography, although domains compare case-insensitively;
//   - it ignores the key's t=s flag (§3.6.1: the i= domain must then equal
//     d=, no subdomain);
//   - it cannot read a headers-only message (see endHeader);
//   - its clock cannot be set, so expiry (x=) cannot be tested.
// Signing stays with go-msgauth; verifying is here. Policy choices follow
// go-msgauth where RFCs leave room, so that nothing else changes: rsa-sha1
// and RSA keys below 1024 bits fail (RFC 8301), a body length limit (l=)
// fails (a signature that covers part of the body lets anything be
// appended), several TXT records for one key fail (§3.6.2.2).

// dkimVerification is the outcome of one DKIM-Signature field.
type dkimVerification struct {
	Domain     string    // d=, as written
	Identifier string    // i=, decoded; "@" + d= when absent
	Expiration time.Time // x=, zero when absent
	Err        error     // nil when the signature verifies
	Temp       bool      // the key could not be fetched now (RFC 6376 §6.1.2 TEMPFAIL)
}

// maxHeaderBytes bounds the header section the verifier reads into
// memory; the body is streamed.
const maxHeaderBytes = 1 << 20

// dkimSig is one parsed DKIM-Signature.
type dkimSig struct {
	field      string // the whole field, CRLF line ends, for the header hash
	tags       map[string]string
	domain     string // d=, lower-case
	selector   string
	keyAlgo    string // "rsa" or "ed25519"
	headerCan  string // "simple" or "relaxed"
	bodyCan    string
	headerKeys []string
	bodyHash   []byte
	sig        []byte
}

func permFail(format string, a ...any) error {
	return fmt.Errorf("dkim: "+format, a...)
}

// verifyDKIMStream verifies up to maxVerifications DKIM-Signature fields of
// the message read from msg (CRLF line ends), the top-most first. The error
// is non-nil only when the message cannot be read.
func verifyDKIMStream(ctx context.Context, d *dnsCache, msg io.Reader) ([]*dkimVerification, error) {
	br := bufio.NewReader(endHeader(msg))
	fields, err := readHeaderFields(br)
	if err != nil {
		return nil, err
	}
	var sigs []*dkimSig
	var out []*dkimVerification
	for _, f := range fields {
		name, value, _ := strings.Cut(f, ":")
		if !strings.EqualFold(strings.TrimRight(name, " \t"), "DKIM-Signature") {
			continue
		}
		if len(out) == maxVerifications {
			break
		}
		v := &dkimVerification{}
		out = append(out, v)
		s, err := parseDKIMSig(f, value, v, d.now())
		if err != nil {
			v.Err = err
			sigs = append(sigs, nil)
			continue
		}
		sigs = append(sigs, s)
	}
	if len(out) == 0 {
		return nil, nil
	}

	// One pass over the body, one hasher per canonicalization in use.
	hashers := map[string]hash.Hash{}
	var writers []io.Writer
	var closers []io.Closer
	for _, s := range sigs {
		if s == nil || hashers[s.bodyCan] != nil {
			continue
		}
		h := sha256.New()
		hashers[s.bodyCan] = h
		wc := newBodyCanonicalizer(s.bodyCan, h)
		writers = append(writers, wc)
		closers = append(closers, wc)
	}
	if len(writers) > 0 {
		if _, err := io.Copy(io.MultiWriter(writers...), br); err != nil {
			return nil, err
		}
		for _, c := range closers {
			c.Close()
		}
	}

	for i, s := range sigs {
		if s == nil {
			continue
		}
		v := out[i]
		if subtle.ConstantTimeCompare(hashers[s.bodyCan].Sum(nil), s.bodyHash) != 1 {
			v.Err = permFail("body hash did not verify")
			continue
		}
		key, err := lookupDKIMKey(ctx, d, s)
		if err != nil {
			v.Err, v.Temp = err, !errors.Is(err, errKeyPerm)
			continue
		}
		if err := key.allows(s, v.Identifier); err != nil {
			v.Err = err
			continue
		}
		if err := key.verify(headerHash(fields, s), s.sig); err != nil {
			v.Err = permFail("signature did not verify: %v", err)
		}
	}
	return out, nil
}

// readHeaderFields reads the header section up to and including the empty
// line that ends it, one string per field with CRLF line ends. endHeader
// guarantees the empty line.
func readHeaderFields(br *bufio.Reader) ([]string, error) {
	var fields []string
	total := 0
	for {
		line, err := br.ReadString('\n')
		total += len(line)
		if total > maxHeaderBytes {
			return nil, errors.New("dkim: header section too large")
		}
		if err != nil {
			return nil, fmt.Errorf("dkim: reading the header: %w", err)
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r") + "\r\n"
		switch {
		case line == "\r\n":
			return fields, nil
		case (line[0] == ' ' || line[0] == '\t') && len(fields) > 0:
			fields[len(fields)-1] += line
		default:
			fields = append(fields, line)
		}
	}
}

// parseTagList parses a tag-list (RFC 6376 §3.2). Tag names and values
// lose surrounding white space; a duplicate tag invalidates the list.
func parseTagList(s string) (map[string]string, error) {
	tags := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue // a trailing ";" is allowed
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, permFail("malformed tag %q", strings.TrimSpace(part))
		}
		k = strings.TrimSpace(k)
		if _, dup := tags[k]; dup {
			return nil, permFail("duplicate tag %s=", k)
		}
		tags[k] = strings.TrimSpace(v)
	}
	return tags, nil
}

// stripFWS removes all white space, as base64 and tag lists allow FWS
// anywhere.
func stripFWS(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
}

// decodeDKIMQP decodes dkim-quoted-printable (RFC 6376 §2.11): "=XX" is the
// octet XX, FWS is dropped. Like Mail::DKIM, a "=" not followed by two hex
// digits stays as it is rather than invalidating the signature: the point
// of the pre-check is to predict receivers.
func decodeDKIMQP(s string) string {
	s = stripFWS(s)
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '=' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			n, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(n))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// parseDKIMSig checks the tags of one signature (RFC 6376 §3.5, §6.1.1)
// and fills in what v reports even when the signature fails.
func parseDKIMSig(field, value string, v *dkimVerification, now time.Time) (*dkimSig, error) {
	tags, err := parseTagList(value)
	if err != nil {
		return nil, err
	}
	v.Domain = stripFWS(tags["d"])
	if tags["v"] != "1" {
		return nil, permFail("incompatible signature version")
	}
	for _, t := range []string{"a", "b", "bh", "d", "h", "s"} {
		if _, ok := tags[t]; !ok {
			return nil, permFail("signature missing required tag %s=", t)
		}
	}
	s := &dkimSig{field: field, tags: tags, domain: strings.ToLower(v.Domain), selector: stripFWS(tags["s"])}

	// i= (§3.5): dkim-quoted-printable, its domain the same as or a
	// subdomain of d=. Domain names compare case-insensitively.
	v.Identifier = "@" + v.Domain
	if i, ok := tags["i"]; ok {
		v.Identifier = decodeDKIMQP(i)
		at := strings.LastIndexByte(v.Identifier, '@')
		if at < 0 {
			return nil, permFail("i=%s has no @", v.Identifier)
		}
		id := strings.ToLower(v.Identifier[at+1:])
		if id != s.domain && !strings.HasSuffix(id, "."+s.domain) {
			return nil, permFail("domain mismatch: i= domain %s is not d=%s or below it", id, v.Domain)
		}
	}

	algo := strings.ToLower(stripFWS(tags["a"]))
	switch algo {
	case "rsa-sha256":
		s.keyAlgo = "rsa"
	case "ed25519-sha256":
		s.keyAlgo = "ed25519"
	case "rsa-sha1":
		// RFC 8301 §3.1: rsa-sha1 MUST NOT be used for verifying.
		return nil, permFail("hash algorithm too weak: sha1")
	default:
		return nil, permFail("unsupported algorithm %s", algo)
	}

	s.headerCan, s.bodyCan = "simple", "simple"
	if c := strings.ToLower(stripFWS(tags["c"])); c != "" {
		h, b, hasBody := strings.Cut(c, "/")
		s.headerCan = h
		if hasBody {
			s.bodyCan = b
		}
	}
	for _, c := range []string{s.headerCan, s.bodyCan} {
		if c != "simple" && c != "relaxed" {
			return nil, permFail("unsupported canonicalization %s", c)
		}
	}

	fromSigned := false
	for _, h := range strings.Split(tags["h"], ":") {
		h = strings.TrimSpace(stripFWS(h))
		if h == "" {
			continue
		}
		s.headerKeys = append(s.headerKeys, h)
		fromSigned = fromSigned || strings.EqualFold(h, "From")
	}
	if !fromSigned {
		// §5.4: From MUST be signed.
		return nil, permFail("From field not signed")
	}

	if q, ok := tags["q"]; ok {
		dnsTXT := false
		for _, m := range strings.Split(stripFWS(q), ":") {
			dnsTXT = dnsTXT || strings.EqualFold(m, "dns/txt")
		}
		if !dnsTXT {
			return nil, permFail("unsupported public key query method %s", q)
		}
	}
	if x, ok := tags["x"]; ok {
		sec, err := strconv.ParseInt(stripFWS(x), 10, 64)
		if err != nil {
			return nil, permFail("malformed expiration time: %v", err)
		}
		v.Expiration = time.Unix(sec, 0)
		if now.After(v.Expiration) {
			return nil, permFail("signature has expired")
		}
	}
	if _, ok := tags["l"]; ok {
		return nil, permFail("message contains an insecure body length tag")
	}
	if s.bodyHash, err = base64.StdEncoding.DecodeString(stripFWS(tags["bh"])); err != nil {
		return nil, permFail("malformed body hash: %v", err)
	}
	if s.sig, err = base64.StdEncoding.DecodeString(stripFWS(tags["b"])); err != nil {
		return nil, permFail("malformed signature: %v", err)
	}
	return s, nil
}

// headerHash is the hash of the signed header fields (RFC 6376 §5.4.2:
// for each name in h=, the last instance not yet used, absent ones
// contributing nothing) followed by the signature field with an empty b=
// and no final CRLF (§3.7).
func headerHash(fields []string, s *dkimSig) []byte {
	h := sha256.New()
	used := map[int]bool{}
	for _, key := range s.headerKeys {
		for i := len(fields) - 1; i >= 0; i-- {
			name, _, _ := strings.Cut(fields[i], ":")
			if used[i] || !strings.EqualFold(strings.TrimRight(name, " \t"), key) {
				continue
			}
			used[i] = true
			io.WriteString(h, canonicalHeader(s.headerCan, fields[i]))
			break
		}
	}
	sig := canonicalHeader(s.headerCan, withoutSigValue(s.field))
	io.WriteString(h, strings.TrimSuffix(sig, "\r\n"))
	return h.Sum(nil)
}

// withoutSigValue empties the value of the b= tag of a DKIM-Signature
// field, keeping everything else byte for byte (RFC 6376 §3.7).
func withoutSigValue(field string) string {
	colon := strings.IndexByte(field, ':')
	var b strings.Builder
	b.WriteString(field[:colon+1])
	parts := strings.Split(field[colon+1:], ";")
	for i, part := range parts {
		if i > 0 {
			b.WriteByte(';')
		}
		if k, _, ok := strings.Cut(part, "="); ok && stripFWS(k) == "b" {
			b.WriteString(k + "=")
			// Keep the CRLF that ends the field when b= is the last tag.
			if i == len(parts)-1 && strings.HasSuffix(part, "\r\n") {
				b.WriteString("\r\n")
			}
			continue
		}
		b.WriteString(part)
	}
	return b.String()
}

// canonicalHeader canonicalizes one header field with its CRLF.
func canonicalHeader(can, field string) string {
	if can == "simple" { // §3.4.1: as it is
		return field
	}
	// §3.4.2 relaxed: lower-case name, unfold, runs of WSP to one SP, no
	// WSP at the end of the value or around the colon.
	name, value, _ := strings.Cut(field, ":")
	value = strings.ReplaceAll(strings.ReplaceAll(value, "\r\n", ""), "\n", "")
	value = strings.Join(strings.FieldsFunc(value, func(r rune) bool { return r == ' ' || r == '\t' }), " ")
	return strings.ToLower(strings.TrimRight(name, " \t")) + ":" + value + "\r\n"
}

// errKeyPerm marks a key lookup result that will not change on retry.
var errKeyPerm = errors.New("dkim: key")

// dkimKey is a parsed key record (RFC 6376 §3.6.1).
type dkimKey struct {
	pub      crypto.PublicKey
	algo     string   // "rsa" or "ed25519"
	hashes   []string // h=; nil means any
	services []string // s=; nil means any
	strict   bool     // t=s
}

func lookupDKIMKey(ctx context.Context, d *dnsCache, s *dkimSig) (*dkimKey, error) {
	name := s.selector + "._domainkey." + s.domain
	txts, err := d.LookupTXT(ctx, name)
	switch {
	case err != nil && isNotFoundDNS(err):
		return nil, fmt.Errorf("%w: no key for signature at %s", errKeyPerm, name)
	case err != nil:
		return nil, fmt.Errorf("dkim: key unavailable: %v", err)
	case len(txts) == 0:
		return nil, fmt.Errorf("%w: no key for signature at %s", errKeyPerm, name)
	case len(txts) > 1:
		return nil, fmt.Errorf("%w: multiple TXT records at %s", errKeyPerm, name)
	}
	k, err := parseDKIMKey(txts[0])
	if err != nil {
		return nil, fmt.Errorf("%w record %s: %v", errKeyPerm, name, err)
	}
	return k, nil
}

func parseDKIMKey(txt string) (*dkimKey, error) {
	pub, err := parseKeyRecord(txt)
	if err != nil {
		return nil, err
	}
	tags := keyRecordTags(txt)
	k := &dkimKey{pub: pub, algo: keyAlgo(pub)}
	if rp, ok := pub.(*rsa.PublicKey); ok && rp.N.BitLen() < 1024 {
		// RFC 8301 §3.2: verifiers MUST NOT consider such signatures valid.
		return nil, fmt.Errorf("RSA key of %d bits is too short", rp.N.BitLen())
	}
	list := func(tag string) []string {
		v, ok := tags[tag]
		if !ok {
			return nil
		}
		return strings.Split(v, ":")
	}
	k.hashes = list("h")
	k.services = list("s")
	for _, f := range list("t") {
		k.strict = k.strict || f == "s"
	}
	return k, nil
}

// allows applies the key record's restrictions to the signature.
func (k *dkimKey) allows(s *dkimSig, identifier string) error {
	if k.algo != s.keyAlgo {
		return fmt.Errorf("%w type %s does not match a=%s", errKeyPerm, k.algo, s.tags["a"])
	}
	if k.hashes != nil && !containsFold(k.hashes, "sha256") {
		return fmt.Errorf("%w does not allow sha256 (h=%s)", errKeyPerm, strings.Join(k.hashes, ":"))
	}
	if k.services != nil && !containsFold(k.services, "email") && !containsFold(k.services, "*") {
		return fmt.Errorf("%w is not for email (s=%s)", errKeyPerm, strings.Join(k.services, ":"))
	}
	// §3.6.1 t=s: the i= domain must be d= itself, not a subdomain.
	if _, hasI := s.tags["i"]; hasI && k.strict {
		id := strings.ToLower(identifier[strings.LastIndexByte(identifier, '@')+1:])
		if id != s.domain {
			return fmt.Errorf("%w has t=s: i= domain %s must be d=%s exactly", errKeyPerm, id, s.domain)
		}
	}
	return nil
}

func (k *dkimKey) verify(hashed, sig []byte) error {
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, hashed, sig)
	case ed25519.PublicKey:
		// RFC 8463 §3: Ed25519 signs the SHA-256 hash.
		if !ed25519.Verify(pub, hashed, sig) {
			return errors.New("invalid Ed25519 signature")
		}
		return nil
	}
	return fmt.Errorf("unsupported key %T", k.pub)
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// bodyCanonicalizer streams a body through the simple (RFC 6376 §3.4.3) or
// relaxed (§3.4.4) canonicalization. Line ends are CRLF; a bare LF is
// taken as one (as go-msgauth and dkimpy do). Trailing empty lines are held
// back until content follows them, so that they can be dropped at the end.
type bodyCanonicalizer struct {
	w       io.Writer
	relaxed bool
	held    int  // line ends not yet written
	cr      bool // a CR waiting for its LF
	ws      bool // relaxed: white space waiting for more content
	wrote   bool // some content was written
	buf     []byte
}

func newBodyCanonicalizer(can string, w io.Writer) *bodyCanonicalizer {
	return &bodyCanonicalizer{w: w, relaxed: can == "relaxed"}
}

func (c *bodyCanonicalizer) Write(p []byte) (int, error) {
	c.buf = c.buf[:0]
	for _, b := range p {
		if c.cr {
			c.cr = false
			if b == '\n' {
				c.lineEnd()
				continue
			}
			c.content('\r') // a lone CR is content
		}
		switch {
		case b == '\r':
			c.cr = true
		case b == '\n':
			c.lineEnd()
		case c.relaxed && (b == ' ' || b == '\t'):
			c.ws = true
		default:
			c.content(b)
		}
	}
	_, err := c.w.Write(c.buf)
	return len(p), err
}

func (c *bodyCanonicalizer) lineEnd() {
	c.ws = false // relaxed: white space at the end of a line goes
	c.held++
}

func (c *bodyCanonicalizer) content(b byte) {
	for ; c.held > 0; c.held-- {
		c.buf = append(c.buf, '\r', '\n')
	}
	if c.ws {
		c.buf = append(c.buf, ' ')
		c.ws = false
	}
	c.buf = append(c.buf, b)
	c.wrote = true
}

// Close ends the body: one CRLF after the last non-empty line (added when
// the body does not end with one); for an empty body a single CRLF in
// simple (§3.4.3) and nothing in relaxed (§3.4.4).
func (c *bodyCanonicalizer) Close() error {
	c.buf = c.buf[:0]
	if c.cr {
		c.cr = false
		c.content('\r')
	}
	if c.wrote || !c.relaxed {
		c.buf = append(c.buf, '\r', '\n')
	}
	_, err := c.w.Write(c.buf)
	return err
}
