package testca

import (
	"crypto/x509"
	"testing"
	"time"
)

// TestIssueVerifies: a leaf the CA signs verifies against its pool for
// its name, and not for another; an expired one does not verify.
func TestIssueVerifies(t *testing.T) {
	t.Parallel()
	now := time.Now()
	ca, err := New(now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.Issue(now.Add(-time.Hour), now.Add(time.Hour), "mx.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool, DNSName: "mx.example.test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool, DNSName: "other.test"}); err == nil {
		t.Error("verified for another name")
	}
	old, _ := ca.Issue(now.Add(-48*time.Hour), now.Add(-24*time.Hour), "mx.example.test")
	if _, err := old.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool, DNSName: "mx.example.test"}); err == nil {
		t.Error("expired certificate verified")
	}
}
