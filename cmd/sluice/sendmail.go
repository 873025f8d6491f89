package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/mail"
	"net/netip"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"sluice/config"
	"sluice/internal/escape"
)

// `sluice sendmail`, also run as `sendmail` through a symlink (argv[0]),
// is the sendmail(1) entry point that PHP's mail(), cron and most Unix
// software call: the message on stdin, recipients as arguments or, with
// -t, from its header. It submits the message over SMTP to the relay's
// own listen.smtp (read from --config, default /etc/sluice/sluice.toml)
// and spools nothing locally: when the relay is down it exits
// EX_TEMPFAIL and the caller keeps the message (docs/design-notes.md,
// "sendmail").

// Exit codes of sysexits.h, which callers of sendmail(1) test.
const (
	exOK          = 0
	exUsage       = 64 // bad command line
	exDataErr     = 65 // bad input: no recipients, a header that cannot be read
	exNoUser      = 67 // a recipient refused permanently
	exUnavailable = 69 // the relay refused the message permanently
	exSoftware    = 70
	exIOErr       = 74 // stdin could not be read
	exTempFail    = 75 // try again later: relay down, 4xx
	exNoPerm      = 77 // the relay does not let us relay
	exConfig      = 78 // config unreadable, listen.smtp off
)

// defaultSendmailConfig is where the package installs the config.
const defaultSendmailConfig = "/etc/sluice/sluice.toml"

// sendmailTimeout bounds each SMTP command to the local relay, and the
// whole DATA: a relay that hangs must not hang cron.
const sendmailTimeout = 5 * time.Minute

// maxSendmailHeader bounds the header section read before connecting,
// the same bound as the relay's (relay/inbound maxHeader).
const maxSendmailHeader = 1 << 20

// sendmailArgs is the parsed command line.
type sendmailArgs struct {
	config     string
	smtp       string // --smtp: submit there without reading the config
	extract    bool   // -t
	ignoreDots bool   // -i, -oi: a line "." does not end the message
	from       string // -f, -r
	fromSet    bool
	fullName   string // -F
	smtpMode   bool   // -bs
	notify     string // -N
	ret        string // -R
	envid      string // -V
	rcpts      []string
}

// exitErr is an error with its sysexits code.
type exitErr struct {
	code int
	msg  string
}

func (e *exitErr) Error() string { return e.msg }

func fail(code int, format string, a ...any) *exitErr {
	return &exitErr{code: code, msg: fmt.Sprintf(format, a...)}
}

// parseSendmailArgs reads sendmail's command line: single-letter flags,
// whose value is attached (-fADDR) or the next argument (-f ADDR), then
// the recipients. Flags of other sendmail modes (-bd, -bp, -q) are
// refused; legacy flags that change nothing here are accepted and
// ignored, as Postfix's sendmail does.
func parseSendmailArgs(args []string) (*sendmailArgs, error) {
	a := &sendmailArgs{config: defaultSendmailConfig}
	i := 0
	// value returns the flag's value: the rest of the argument, or the
	// next argument.
	value := func(flag, rest string) (string, error) {
		if rest != "" {
			return rest, nil
		}
		if i+1 >= len(args) {
			return "", fail(exUsage, "option -%s requires a value", flag)
		}
		i++
		return args[i], nil
	}
	for ; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			i++
			break
		}
		if v, ok := strings.CutPrefix(arg, "--config="); ok {
			a.config = v
			continue
		}
		if v, ok := strings.CutPrefix(arg, "--smtp="); ok {
			a.smtp = v
			continue
		}
		if arg == "--config" || arg == "--smtp" {
			v, err := value(arg[1:], "")
			if err != nil {
				return nil, err
			}
			if arg == "--config" {
				a.config = v
			} else {
				a.smtp = v
			}
			continue
		}
		if len(arg) < 2 || arg[0] != '-' {
			break
		}
		flag, rest := arg[1:2], arg[2:]
		var err error
		switch flag {
		case "t":
			a.extract = true
		case "i":
			a.ignoreDots = true
		case "f", "r":
			a.from, err = value(flag, rest)
			a.fromSet = true
		case "F":
			a.fullName, err = value(flag, rest)
		case "N":
			a.notify, err = value(flag, rest)
		case "R":
			a.ret, err = value(flag, rest)
		case "V":
			a.envid, err = value(flag, rest)
		case "b":
			switch rest {
			case "m", "":
				// -bm: deliver mail, the default.
			case "s":
				a.smtpMode = true
			default:
				return nil, fail(exUsage, "-b%s is not supported: sluice sendmail only submits mail (-bm, -bs); use `sluice queue` and `sluice serve` for the rest", rest)
			}
		case "o":
			switch {
			case rest == "i":
				a.ignoreDots = true
			case rest == "":
				// "-o X": the option is the next argument.
				var v string
				if v, err = value(flag, ""); err == nil && v == "i" {
					a.ignoreDots = true
				}
			}
			// -oem, -oee, -odb, -odi, -om, -oQ...: error and delivery
			// modes of a local queue that sluice does not have.
		case "B", "C", "h", "L", "O", "X":
			// Body type (the relay reads the body as it is), sendmail's
			// config file, hop count, syslog tag, options, log file:
			// they take a value and change nothing here.
			_, err = value(flag, rest)
		case "A", "d", "e", "G", "m", "n", "U", "v", "x":
			// Legacy flags without a value (-Am, -em, -n, -U...).
		case "q", "I":
			return nil, fail(exUsage, "-%s is not supported: sluice has its own queue (sluice queue flush)", flag)
		default:
			return nil, fail(exUsage, "unknown option -%s", flag)
		}
		if err != nil {
			return nil, err
		}
	}
	a.rcpts = append(a.rcpts, args[i:]...)
	if a.notify != "" {
		n, err := checkNotify(a.notify)
		if err != nil {
			return nil, err
		}
		a.notify = n
	}
	if a.ret != "" {
		switch r := strings.ToUpper(a.ret); r {
		case "FULL", "HDRS":
			a.ret = r
		default:
			return nil, fail(exUsage, "-R takes full or hdrs, not %q", a.ret)
		}
	}
	return a, nil
}

// checkNotify validates -N: "never", or a list of success, failure and
// delay (RFC 3461 §4.1).
func checkNotify(v string) (string, error) {
	var out []string
	never := false
	for _, p := range strings.Split(strings.ToUpper(v), ",") {
		p = strings.TrimSpace(p)
		switch p {
		case "NEVER":
			never = true
		case "SUCCESS", "FAILURE", "DELAY":
		default:
			return "", fail(exUsage, "-N takes never or success,failure,delay, not %q", v)
		}
		out = append(out, p)
	}
	if never && len(out) > 1 {
		return "", fail(exUsage, "-N never cannot be combined with other values")
	}
	return strings.Join(out, ","), nil
}

// runSendmail is the whole sendmail command; it returns the exit code.
func runSendmail(name string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := sendmail(args, stdin, stdout)
	if err == nil {
		return exOK
	}
	code := exSoftware
	var ee *exitErr
	if errors.As(err, &ee) {
		code = ee.code
	}
	fmt.Fprintf(stderr, "%s: %s\n", name, escape.Lines(err.Error()))
	return code
}

func sendmail(args []string, stdin io.Reader, stdout io.Writer) error {
	a, err := parseSendmailArgs(args)
	if err != nil {
		return err
	}
	cfg, addr, err := submitConfig(a)
	if err != nil {
		return err
	}
	if a.smtpMode {
		return smtpProxy(addr, stdin, stdout)
	}
	in := bufio.NewReaderSize(stdin, 64<<10)
	defer drainStdin(in, int64(cfg.Limits.MaxMessageSize))
	return sendmailSubmit(a, cfg, addr, in)
}

// submitConfig is the config and the address to submit to: --smtp
// ADDR with the embedded defaults and the machine's host name (for a
// caller that may not read the config: the package keeps /etc/sluice
// to root and group sluice), else the config's listen.smtp.
func submitConfig(a *sendmailArgs) (*config.Config, string, error) {
	if a.smtp != "" {
		cfg := config.Default()
		if h, err := os.Hostname(); err == nil && h != "" {
			cfg.Hostname = h
		}
		addr, err := submitAddr(a.smtp)
		if err != nil {
			return nil, "", fail(exUsage, "--smtp: %v", err)
		}
		return cfg, addr, nil
	}
	cfg, err := config.LoadForSubmit(a.config)
	if errors.Is(err, fs.ErrPermission) {
		return nil, "", fail(exConfig, "%v: give the relay's address with --smtp HOST:PORT (its listen.smtp), or let this user read the config", err)
	}
	if err != nil {
		return nil, "", fail(exConfig, "%v", err)
	}
	addr, err := submitAddr(cfg.Listen.SMTP)
	if err != nil {
		return nil, "", fail(exConfig, "%s: %v", a.config, err)
	}
	return cfg, addr, nil
}

// drainStdin reads what is left of stdin (up to limit bytes) when we give up
// early: the program writing to us would otherwise die of SIGPIPE
// before it reads our exit code.
func drainStdin(r io.Reader, limit int64) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r, max(limit, 1<<20)))
}

// submitAddr is where to submit: listen.smtp, with a wildcard host
// replaced by the loopback address.
func submitAddr(listen string) (string, error) {
	if listen == "" {
		return "", errors.New("listen.smtp is off; sendmail submits to the relay's SMTP listener")
	}
	ap, err := netip.ParseAddrPort(listen)
	if err != nil {
		host, port, serr := net.SplitHostPort(listen)
		if serr != nil {
			return "", fmt.Errorf("listen.smtp %q: %v", listen, serr)
		}
		if host == "" {
			host = "127.0.0.1"
		}
		return net.JoinHostPort(host, port), nil
	}
	switch {
	case ap.Addr() == netip.IPv6Unspecified():
		ap = netip.AddrPortFrom(netip.IPv6Loopback(), ap.Port())
	case ap.Addr().IsUnspecified():
		ap = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ap.Port())
	}
	return ap.String(), nil
}

// sendmailSubmit reads the header section, works out the envelope, and streams
// the message to the relay. It is all or nothing: a recipient refused
// ends the transaction before DATA, so that a caller retrying after a
// failure never sends a second copy to the recipients that were
// accepted the first time.
func sendmailSubmit(a *sendmailArgs, cfg *config.Config, addr string, in *bufio.Reader) error {
	hdr, first, body, err := readSendmailHeader(in, !a.ignoreDots)
	if err != nil {
		return err
	}
	rcpts := append([]string(nil), a.rcpts...)
	if a.extract {
		found, err := headerRecipients(hdr)
		if err != nil {
			return err
		}
		rcpts = append(rcpts, found...)
	}
	for i, r := range rcpts {
		rcpts[i] = qualify(strings.TrimSpace(r), cfg.Hostname)
	}
	rcpts = dedupe(rcpts)
	if len(rcpts) == 0 {
		if a.extract {
			return fail(exDataErr, "no recipient addresses found in the message header (To, Cc, Bcc)")
		}
		return fail(exUsage, "no recipients: give them as arguments, or -t to read them from the header")
	}
	from := a.from
	if !a.fromSet {
		from = loginName()
	}
	if from == "<>" {
		from = ""
	}
	from = strings.Trim(from, "<>")
	if from != "" {
		from = qualify(from, cfg.Hostname)
	}
	out := rewriteHeader(hdr, from, a.fullName, cfg.Hostname)

	conn, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return fail(exTempFail, "the relay at %s is not reachable (%v); nothing was sent or kept, try again later", addr, err)
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout = sendmailTimeout
	c.SubmissionTimeout = sendmailTimeout
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return smtpFail("EHLO", err)
	}
	mo := &smtp.MailOptions{UTF8: !isASCIIString(from) || !allASCIIStrings(rcpts)}
	if ok, _ := c.Extension("DSN"); ok {
		mo.Return, mo.EnvelopeID = smtp.DSNReturn(a.ret), a.envid
	}
	if err := c.Mail(from, mo); err != nil {
		return smtpFail("MAIL FROM", err)
	}
	var ro *smtp.RcptOptions
	if ok, _ := c.Extension("DSN"); ok && a.notify != "" {
		ro = &smtp.RcptOptions{}
		for _, n := range strings.Split(a.notify, ",") {
			ro.Notify = append(ro.Notify, smtp.DSNNotify(n))
		}
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, ro); err != nil {
			return smtpFail("RCPT TO:<"+r+">", err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return smtpFail("DATA", err)
	}
	if _, err := w.Write(out); err != nil {
		return fail(exTempFail, "sending to the relay: %v", err)
	}
	if body {
		if _, err := w.Write(append([]byte("\r\n"), first...)); err != nil {
			return fail(exTempFail, "sending to the relay: %v", err)
		}
		if err := copyBody(w, in, !a.ignoreDots); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return smtpFail("end of DATA", err)
	}
	_ = c.Quit()
	return nil
}

// smtpFail maps the relay's reply to the exit code: a 4xx or a broken
// connection is EX_TEMPFAIL, a 5xx is permanent.
func smtpFail(stage string, err error) error {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return fail(exTempFail, "%s: %v; nothing was sent, try again later", stage, err)
	}
	line := fmt.Sprintf("%s: the relay said %d %d.%d.%d %s", stage, se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
	switch {
	case se.Code < 500:
		return fail(exTempFail, "%s; nothing was sent, try again later", line)
	case se.Code == 530 || se.EnhancedCode == smtp.EnhancedCode{5, 7, 0}:
		return fail(exNoPerm, "%s (this host is not in access.networks)", line)
	case strings.HasPrefix(stage, "RCPT") && se.EnhancedCode[1] == 1:
		return fail(exNoUser, "%s; nothing was sent", line)
	case se.Code == 552 || se.EnhancedCode[1] == 6:
		return fail(exDataErr, "%s; nothing was sent", line)
	}
	return fail(exUnavailable, "%s; nothing was sent", line)
}

// readSendmailHeader reads the header section. It ends at the empty
// line (consumed; body = true), at a line that is not a header field
// (returned as first, the body's first line: `echo text | sendmail`
// sends a message without a header), or at the end of input or, when
// dotEnds, a line holding a single dot (body = false). A leading mbox
// "From " line is dropped, as sendmail does.
func readSendmailHeader(in *bufio.Reader, dotEnds bool) (hdr, first []byte, body bool, err error) {
	for n := 0; ; n++ {
		line, err := in.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, nil, false, fail(exDataErr, "a header line is longer than 64 KB")
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, nil, false, fail(exIOErr, "reading the message: %v", err)
		}
		t := bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			return hdr, nil, false, nil
		case dotEnds && string(t) == "." && len(line) > len(t):
			return hdr, nil, false, nil
		case len(t) == 0:
			return hdr, nil, true, nil
		case n == 0 && bytes.HasPrefix(line, []byte("From ")):
			continue
		case isFieldLine(t) || (line[0] == ' ' || line[0] == '\t') && len(hdr) > 0:
			hdr = append(hdr, line...)
			if !bytes.HasSuffix(hdr, []byte("\n")) {
				hdr = append(hdr, '\r', '\n')
			}
		default:
			return hdr, append([]byte(nil), line...), true, nil
		}
		if len(hdr) > maxSendmailHeader {
			return nil, nil, false, fail(exDataErr, "the header section is larger than %d bytes", maxSendmailHeader)
		}
		if err != nil { // EOF
			return hdr, nil, false, nil
		}
	}
}

// isFieldLine reports "name: value" with a field name of printable
// ASCII other than the colon (RFC 5322 §2.2).
func isFieldLine(line []byte) bool {
	c := bytes.IndexByte(line, ':')
	if c <= 0 {
		return false
	}
	for _, b := range line[:c] {
		if b < 33 || b > 126 {
			return false
		}
	}
	return true
}

// copyBody streams the body to w (a dot-stuffing, LF → CRLF writer),
// stopping at a lone "." line when dotEnds (sendmail without -i).
func copyBody(w io.Writer, in *bufio.Reader, dotEnds bool) error {
	if !dotEnds {
		if _, err := io.Copy(w, in); err != nil {
			return fail(exTempFail, "sending to the relay: %v", err)
		}
		return nil
	}
	for {
		line, err := in.ReadSlice('\n')
		if len(line) > 0 {
			if t := bytes.TrimRight(line, "\r\n"); string(t) == "." && len(t) < len(line) {
				return nil
			}
			if _, werr := w.Write(line); werr != nil {
				return fail(exTempFail, "sending to the relay: %v", werr)
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return nil
		default:
			return fail(exIOErr, "reading the message: %v", err)
		}
	}
}

// headerField is one field of a header section, folded lines included.
type headerField struct {
	name string // as written
	raw  []byte // the whole field, line endings included
}

// splitHeader cuts a header section into its fields; a line that is
// neither a field nor a continuation is kept as a field of no name.
func splitHeader(hdr []byte) []headerField {
	var out []headerField
	for len(hdr) > 0 {
		i := bytes.IndexByte(hdr, '\n')
		line := hdr
		if i >= 0 {
			line = hdr[:i+1]
		}
		hdr = hdr[len(line):]
		if (line[0] == ' ' || line[0] == '\t') && len(out) > 0 {
			out[len(out)-1].raw = append(out[len(out)-1].raw, line...)
			continue
		}
		name := ""
		if c := bytes.IndexByte(line, ':'); c > 0 && !bytes.ContainsAny(line[:c], " \t") {
			name = string(line[:c])
		}
		out = append(out, headerField{name: name, raw: append([]byte(nil), line...)})
	}
	return out
}

// value is the unfolded field body.
func (f headerField) value() string {
	v := string(f.raw[len(f.name)+1:])
	v = strings.NewReplacer("\r\n", "", "\n", "", "\r", "").Replace(v)
	return strings.TrimSpace(v)
}

// headerRecipients are the addresses of To, Cc and Bcc, or of
// Resent-To, Resent-Cc and Resent-Bcc when the message has any Resent-
// field (RFC 5322 §3.6.6: a resent message goes to the resent
// recipients), as Sendmail and Postfix read them for -t.
func headerRecipients(hdr []byte) ([]string, error) {
	fields := splitHeader(hdr)
	names := []string{"to", "cc", "bcc"}
	for _, f := range fields {
		if strings.HasPrefix(strings.ToLower(f.name), "resent-") {
			names = []string{"resent-to", "resent-cc", "resent-bcc"}
			break
		}
	}
	var out []string
	for _, f := range fields {
		n := strings.ToLower(f.name)
		if n != names[0] && n != names[1] && n != names[2] {
			continue
		}
		v := f.value()
		if v == "" {
			continue
		}
		list, err := (&mail.AddressParser{}).ParseList(v)
		if err != nil {
			list = lenientAddresses(v)
			if list == nil {
				return nil, fail(exDataErr, "%s: cannot read the addresses %q", f.name, v)
			}
		}
		for _, ad := range list {
			out = append(out, ad.Address)
		}
	}
	return out, nil
}

// lenientAddresses reads what net/mail refuses but mailers write: bare
// local parts ("To: root", as cron writes it) and unquoted display names
// with dots or commas' neighbours. Each comma-separated part gives the
// address in its angle brackets, else the part itself when it is one
// word.
func lenientAddresses(v string) []*mail.Address {
	var out []*mail.Address
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if i := strings.LastIndexByte(p, '<'); i >= 0 {
			if j := strings.IndexByte(p[i:], '>'); j > 0 {
				if a := strings.TrimSpace(p[i+1 : i+j]); a != "" {
					out = append(out, &mail.Address{Address: a})
					continue
				}
			}
			return nil
		}
		if strings.ContainsAny(p, " \t\"()") {
			return nil
		}
		out = append(out, &mail.Address{Address: p})
	}
	return out
}

// rewriteHeader is the header as submitted: every Bcc field removed
// (it names the blind recipients; Postfix removes it in every case, not
// only with -t), and a From field added when there is none (RFC 5322
// §3.6 requires one), from the envelope sender and -F.
func rewriteHeader(hdr []byte, from, fullName, hostname string) []byte {
	var out bytes.Buffer
	hasFrom := false
	for _, f := range splitHeader(hdr) {
		switch strings.ToLower(f.name) {
		case "bcc", "resent-bcc":
			continue
		case "from":
			hasFrom = true
		}
		out.Write(f.raw)
	}
	if hasFrom {
		return out.Bytes()
	}
	addr := from
	if addr == "" {
		addr = "MAILER-DAEMON@" + hostname
	}
	field := (&mail.Address{Name: fullName, Address: addr}).String()
	return append([]byte("From: "+field+"\r\n"), out.Bytes()...)
}

// qualify appends @hostname to a bare local part ("root"), as Postfix
// appends myorigin: cron and many scripts name local users.
func qualify(addr, hostname string) string {
	if addr == "" || strings.Contains(addr, "@") {
		return addr
	}
	return addr + "@" + hostname
}

// loginName is the user running us, the default envelope sender.
func loginName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	for _, v := range []string{"LOGNAME", "USER"} {
		if s := os.Getenv(v); s != "" {
			return s
		}
	}
	return "nobody"
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		k := strings.ToLower(s)
		if s == "" || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, s)
	}
	return out
}

func isASCIIString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func allASCIIStrings(ss []string) bool {
	for _, s := range ss {
		if !isASCIIString(s) {
			return false
		}
	}
	return true
}

// smtpProxy is -bs: an SMTP session on stdin and stdout, passed to the
// relay as it is, with bare LFs from stdin made CRLF (a terminal or a
// script sends LF; the relay refuses bare LFs).
func smtpProxy(addr string, stdin io.Reader, stdout io.Writer) error {
	conn, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return fail(exTempFail, "the relay at %s is not reachable (%v)", addr, err)
	}
	defer conn.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(stdout, conn)
	}()
	in := bufio.NewReader(stdin)
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 0 {
			if bytes.HasSuffix(line, []byte("\n")) && !bytes.HasSuffix(line, []byte("\r\n")) {
				line = append(line[:len(line)-1], '\r', '\n')
			}
			if _, werr := conn.Write(line); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	<-done
	return nil
}
