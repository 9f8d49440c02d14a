// Package sqlstore implements store.Store once, in SQL that SQLite and
// PostgreSQL both speak; store/sqlite and store/postgres open the database,
// name the dialect and carry their migrations. The threading and identity
// rules therefore exist once, and the contract tests hold both backends to
// them.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/inroute/inroute/store"
)

// Dialect is what differs between the backends.
type Dialect struct {
	Name string
	// Numbered placeholders ($1, $2, ...) instead of ?.
	Numbered bool
	// MigrationLock is run first in the migration transaction (a
	// PostgreSQL advisory lock); SQLite's write transaction is lock enough.
	MigrationLock string
	// LockCustomer, if set, locks a contact row for the transaction, so
	// two routers threading messages of one customer take turns.
	LockCustomer string
	// Retryable reports errors after which the whole transaction should
	// simply run again: deadlocks, serialization failures, unique
	// violations from a concurrent writer, a busy database.
	Retryable func(error) bool
}

// Rebind rewrites ? placeholders for the dialect.
func (d Dialect) Rebind(q string) string {
	if !d.Numbered {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// Store is store.Store over database/sql.
type Store struct {
	db *sql.DB
	d  Dialect
	o  store.Options
}

var _ store.Store = (*Store)(nil)

// New wraps an open, migrated database.
func New(db *sql.DB, d Dialect, o store.Options) *Store {
	return &Store{db: db, d: d, o: o.WithDefaults()}
}

// DB is the underlying database (for backend-specific tools and tests).
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// errRaced means a concurrent transaction wrote what this one was about to
// write; running again sees it.
var errRaced = errors.New("raced with a concurrent writer")

const maxAttempts = 8

// retryTx runs fn in a transaction, again when it fails in a way that a
// second run resolves.
func retryTx(ctx context.Context, db *sql.DB, d Dialect, fn func(*sql.Tx) error) error {
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		err = runTx(ctx, db, fn)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errRaced) && (d.Retryable == nil || !d.Retryable(err)) {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt*attempt) * time.Millisecond)
	}
	return fmt.Errorf("after %d attempts: %w", maxAttempts, err)
}

func runTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// q rebinds a query for the dialect.
func (s *Store) q(query string) string { return s.d.Rebind(query) }

// placeholders returns "?, ?, ?" for n values.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

func us(t time.Time) int64 { return t.UnixMicro() }

func fromUS(v int64) time.Time { return time.UnixMicro(v).UTC() }

func nullTime(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromUS(v.Int64)
	return &t
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
