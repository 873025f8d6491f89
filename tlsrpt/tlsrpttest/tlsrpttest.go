// Package tlsrpttest checks TLS-RPT reports in tests, for the tlsrpt
// package and the binary's proof alike: a report's JSON (RFC 8460 §4.4)
// against report.schema.json, a JSON Schema of its structure, and the
// report carried by a mail as RFC 8460 §5.3 sends it.
package tlsrpttest

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed report.schema.json
var schemaJSON []byte

// schema is report.schema.json, compiled once.
var schema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("report.schema.json", doc); err != nil {
		return nil, err
	}
	return c.Compile("report.schema.json")
})

// Validate says why j, a report's JSON, does not conform to the schema;
// nil when it does.
func Validate(j []byte) error {
	s, err := schema()
	if err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		return fmt.Errorf("report is not JSON: %w", err)
	}
	if err := s.Validate(v); err != nil {
		return fmt.Errorf("report does not validate: %w", err)
	}
	return nil
}

// Gunzip returns b uncompressed (a report is gzipped, RFC 8460 §5.1).
func Gunzip(t testing.TB, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// MailedReport returns the report a mail carries: its
// application/tlsrpt+gzip part (RFC 8460 §5.3), base64-decoded and
// gunzipped, and the part's file name; the test fails when m has none.
func MailedReport(t testing.TB, m *mail.Message) (filename string, report []byte) {
	t.Helper()
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no application/tlsrpt+gzip part: %v", err)
		}
		if part.Header.Get("Content-Type") != "application/tlsrpt+gzip" {
			continue
		}
		_, dp, _ := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
		b, _ := io.ReadAll(part)
		gz, err := base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		return dp["filename"], Gunzip(t, gz)
	}
}
