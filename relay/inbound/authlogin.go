package inbound

import (
	"errors"

	"github.com/emersion/go-sasl"
)

// loginServer is the server side of the obsolete but ubiquitous LOGIN
// SASL mechanism (draft-murchison-sasl-login): the server prompts
// "Username:" then "Password:". go-sasl only has the client side.
type loginServer struct {
	auth     func(username, password string) error
	step     int
	username string
}

var _ sasl.Server = (*loginServer)(nil)

func (s *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch s.step {
	case 0:
		s.step = 1
		if response == nil {
			return []byte("Username:"), false, nil
		}
		// Some clients send the username as an initial response
		// (RFC 4954 §4 allows one for any mechanism).
		fallthrough
	case 1:
		s.username = string(response)
		s.step = 2
		return []byte("Password:"), false, nil
	case 2:
		s.step = 3
		return nil, true, s.auth(s.username, string(response))
	}
	return nil, false, errors.New("relay: unexpected AUTH LOGIN response")
}
