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
	"sync"
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
	// ForUpdate is appended to reads of rows the transaction will change
	// (" FOR UPDATE" on PostgreSQL): routers threading one customer take
	// turns, and an agent's claim waits instead of being overwritten.
	// SQLite needs none: a write transaction locks the whole database.
	ForUpdate string
	// SkipLocked is appended to a read that picks one row of many to
	// change (" FOR UPDATE SKIP LOCKED" on PostgreSQL): agents claiming at
	// once each take a different conversation instead of queueing behind
	// one row lock.
	SkipLocked string
	// SingleWriter: the database takes one writer at a time (SQLite).
	SingleWriter bool
	// AllocIDs reserves n new ids of table inside tx, so rows can be
	// written together in multi-row statements.
	AllocIDs func(ctx context.Context, tx *sql.Tx, table string, n int) ([]int64, error)
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

	// With a single-writer database (SQLite) every write transaction runs
	// on one dedicated connection, taking turns on writeMu rather than on
	// the database's busy timeout, and statements are prepared once on
	// that connection: parsing SQL was the biggest cost of recording.
	writeMu sync.Mutex
	writer  *sql.Conn
	stmts   map[string]*sql.Stmt
}

// maxStmts bounds the cache; queries built with a varying number of
// placeholders beyond it are simply not cached.
const maxStmts = 512

// New wraps an open, migrated database.
func New(ctx context.Context, db *sql.DB, d Dialect, o store.Options) (*Store, error) {
	s := &Store{db: db, d: d, o: o.WithDefaults()}
	if d.SingleWriter {
		w, err := db.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("writer connection: %w", err)
		}
		s.writer, s.stmts = w, map[string]*sql.Stmt{}
	}
	return s, nil
}

// DB is the underlying database (for backend-specific tools and tests).
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the database.
func (s *Store) Close() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	for _, st := range s.stmts {
		st.Close()
	}
	if s.writer != nil {
		s.writer.Close()
	}
	return s.db.Close()
}

// stmt returns query prepared on the writer connection, bound to tx, or
// nil when statements are not cached (the caller runs the query on tx).
// It must be called inside writeTx.
func (s *Store) stmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if s.writer == nil {
		return nil, nil
	}
	st, ok := s.stmts[query]
	if !ok {
		if len(s.stmts) >= maxStmts {
			return nil, nil
		}
		var err error
		if st, err = s.writer.PrepareContext(ctx, s.q(query)); err != nil {
			return nil, err
		}
		s.stmts[query] = st
	}
	return tx.StmtContext(ctx, st), nil
}

// writeTx runs fn in a write transaction, again when a second run resolves
// the failure.
func (s *Store) writeTx(ctx context.Context, fn func(*sql.Tx) error) error {
	if s.writer == nil {
		return retryTx(ctx, s.db, s.d, fn)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return retry(ctx, s.d, func() error {
		return runTx(ctx, func() (*sql.Tx, error) { return s.writer.BeginTx(ctx, nil) }, fn)
	})
}

// errRaced means a concurrent transaction wrote what this one was about to
// write; running again sees it.
var errRaced = errors.New("raced with a concurrent writer")

const maxAttempts = 8

// retryTx runs fn in a transaction, again when it fails in a way that a
// second run resolves.
func retryTx(ctx context.Context, db *sql.DB, d Dialect, fn func(*sql.Tx) error) error {
	return retry(ctx, d, func() error {
		return runTx(ctx, func() (*sql.Tx, error) { return db.BeginTx(ctx, nil) }, fn)
	})
}

func retry(ctx context.Context, d Dialect, run func() error) error {
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		err = run()
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

func runTx(ctx context.Context, begin func() (*sql.Tx, error), fn func(*sql.Tx) error) error {
	tx, err := begin()
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

// column reads a one-column result (a query's rows and error, as given).
func column[T any](rows *sql.Rows, err error) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
