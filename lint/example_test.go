package lint_test

import (
	"fmt"
	"strings"

	"sluice/lint"
)

func ExampleCheck() {
	msg := "From: PayPal Service <billing@example.net>\r\n" +
		"Date: Mon, 30 Nov 2026 02:00:00 +0000\r\n" +
		"Message-ID: <1@example.net>\r\n" +
		"Subject: Your account\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" +
		"Confirm at https://bit.ly/3abc\r\n"
	findings, err := lint.Check(strings.NewReader(msg), lint.Options{})
	if err != nil {
		panic(err)
	}
	for _, f := range findings {
		fmt.Println(f.Severity, f.ID, f.Evidence)
	}
	// Output:
	// block from-display-mismatch From: "PayPal Service" <billing@example.net>
	// block link-shortener https://bit.ly/3abc
}
