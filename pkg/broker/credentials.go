package broker

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/postback-dev/postback/pkg/datadir"
)

// CredentialsFile is the name, in the data dir, of the file that holds the
// embedded server's passwords: one "user:password" line per user of Users.
const CredentialsFile = "nats-credentials"

// Credentials are the users' passwords, by user name.
type Credentials map[string]string

// String names the users, never a password.
func (c Credentials) String() string {
	names := make([]string, 0, len(c))
	for _, u := range Users {
		if _, ok := c[u]; ok {
			names = append(names, u)
		}
	}
	return "broker.Credentials{" + strings.Join(names, " ") + "}"
}

// GoString is String, so %#v prints no password either.
func (c Credentials) GoString() string { return c.String() }

// LoadOrCreateCredentials returns the credentials kept in dataDir's
// CredentialsFile, creating it (exclusively, mode 0600) with a new random
// password for every user when it does not exist. A file that group or
// others may read is refused until the operator runs chmod 600 on it, as the
// secret keyring is. A user missing from an existing file (one written by an
// older version) gets a password, and the file is rewritten.
func LoadOrCreateCredentials(dataDir string) (Credentials, error) {
	path := filepath.Join(dataDir, CredentialsFile)
	c, err := loadCredentials(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err == nil && len(c) == len(Users) {
		return c, nil
	}
	exists := err == nil
	if c == nil {
		c = Credentials{}
	}
	for _, u := range Users {
		if c[u] == "" {
			if c[u], err = newPassword(); err != nil {
				return nil, err
			}
		}
	}
	var b strings.Builder
	b.WriteString("# NATS users of the embedded server and their passwords; keep this file 0600.\n")
	for _, u := range Users {
		b.WriteString(u + ":" + c[u] + "\n")
	}
	err = datadir.WritePrivate(path, []byte(b.String()), !exists)
	if errors.Is(err, fs.ErrExist) {
		return loadCredentials(path) // another process created it first
	}
	if err != nil {
		return nil, fmt.Errorf("broker: writing the credentials file: %w", err)
	}
	return c, nil
}

func loadCredentials(path string) (Credentials, error) {
	data, err := datadir.ReadPrivate(path, "credentials file")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("broker: %w", err)
	}
	c := Credentials{}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, pass, ok := strings.Cut(line, ":")
		if !ok || user == "" || pass == "" {
			return nil, fmt.Errorf("broker: credentials file %s line %d: want user:password", path, n)
		}
		c[user] = pass
	}
	return c, nil
}

func newPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("broker: generating a password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
