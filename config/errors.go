package config

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
)

// Error is one configuration problem, located in the source document.
// Line is 0 when it could not be found (for example, a value that came
// from the defaults).
type Error struct {
	File    string
	Line    int
	Key     string // dotted; arrays of tables carry a 1-based index: "policy.rule[2].class"
	Msg     string
	Unknown bool  // the key does not exist in the schema
	Err     error // the cause, when there is one (errors.Is(err, fs.ErrNotExist))
}

func (e *Error) Unwrap() error { return e.Err }

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	switch {
	case e.Unknown:
		fmt.Fprintf(&b, "unknown key %q", e.Key)
	case e.Key != "":
		b.WriteString(e.Key + ": " + e.Msg)
	default:
		b.WriteString(e.Msg)
	}
	return b.String()
}

var typeMismatch = regexp.MustCompile(`^cannot decode TOML (\w+) into .* of type (.+)$`)

// decodeError converts go-toml's errors, which carry positions, into
// *Error values with the file name and dotted key.
func decodeError(name string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		errs := make([]error, 0, len(strict.Errors))
		for i := range strict.Errors {
			de := &strict.Errors[i]
			line, _ := de.Position()
			errs = append(errs, &Error{File: name, Line: line, Key: strings.Join(de.Key(), "."), Unknown: true})
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if m := typeMismatch.FindStringSubmatch(msg); m != nil {
			msg = fmt.Sprintf("wrong type: a %s where %s is expected", m[1], m[2])
		}
		return &Error{File: name, Line: line, Key: strings.Join(de.Key(), "."), Msg: msg}
	}
	return &Error{File: name, Msg: err.Error()}
}
