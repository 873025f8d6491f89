package auth

import "time"

// warnEvery bounds how often warn mode logs the same sender domain: one
// line a minute per From domain says what to fix; one line per message
// drowns the log of a busy application (the metric still counts them all).
// The gate itself is internal/warngate, shared with the content lint.
const warnEvery = time.Minute
