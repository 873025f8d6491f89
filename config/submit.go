package config

import (
	"errors"
	"os"
)

// LoadForSubmit reads the file at path for `sluice sendmail`, which runs
// as whatever user calls sendmail(1) (PHP's www-data, cron's users): the
// file is decoded strictly over the defaults, but not validated and no
// secret is read, so that a smarthost password file or a TLS key that
// only the daemon may read does not stop a local submission. Only the
// keys the submission needs (listen.smtp, hostname, limits) may be used
// from the result.
func LoadForSubmit(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, &Error{File: path, Msg: "cannot read: " + err.Error(), Err: err}
	}
	c := new(Config)
	if err := decode(defaultTOML, "default.toml", c); err != nil {
		return nil, err
	}
	if err := decode(data, path, c); err != nil {
		return nil, err
	}
	return c, nil
}

// LoadForLint reads the [lint] section of the file at path for `sluice
// lint`, which runs offline, in a developer's CI, where the daemon's
// other files (certificates, keys, secrets, data_dir) need not exist: the
// file is decoded strictly over the defaults, and only [lint] is
// validated (its errors name the file, the line and the key).
func LoadForLint(path string) (Lint, error) {
	c, err := LoadForSubmit(path)
	if err != nil {
		return Lint{}, err
	}
	ck := &checker{}
	c.validateLint(ck)
	if len(ck.errs) == 0 {
		return c.Lint, nil
	}
	data, _ := os.ReadFile(path) // read a moment ago; only for the line numbers
	lines := locateKeys(data)
	errs := make([]error, len(ck.errs))
	for i, e := range ck.errs {
		e.File, e.Line = path, lines.find(e.Key)
		errs[i] = e
	}
	return Lint{}, errors.Join(errs...)
}
