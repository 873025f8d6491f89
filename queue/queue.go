// Package queue is sluice's durable mail queue, stored in one bbolt file.
//
// It knows nothing about SMTP. It stores each message once (envelope and
// body) with one state per recipient, a due index per recipient domain
// for the scheduler (with a feed of the domains whose earliest due time
// changed, WatchDue), leases for deliveries in flight, the history of
// every attempt, the suppression list and opaque per-destination policy
// state.
//
// Promises:
//   - Durability: when Enqueue (or any other write) returns nil, the change
//     is committed to disk with fsync (unless Options.NoSync). A crash loses
//     nothing acknowledged. A write that returns an error may, in rare cases
//     of a failed fsync, still be on disk after a restart: delivery is
//     at-least-once, never at-most-once.
//   - Atomicity: every call is applied in one bbolt transaction, so the
//     indexes never disagree with the records.
//   - Group commit: all writes go through one commit goroutine that folds
//     the calls waiting at that moment into a single transaction and fsync,
//     so concurrent clients share fsyncs without a timer.
//   - Concurrency: every method is safe for concurrent use.
//   - Leases: Lease marks recipients StateActive until a deadline
//     (Options.LeaseTimeout); Reclaim returns expired leases that their
//     holder no longer uses to the due index while running, and Open
//     returns every lease left by a previous process, so a lost outcome
//     or a crash means a retry, never a recipient stuck in flight.
package queue

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"sluice/config"
)

// Options configures Open.
type Options struct {
	// Path of the bbolt file, e.g. <data_dir>/queue.db. The parent
	// directory is created with mode 0700.
	Path string
	// LockTimeout bounds the wait for the file lock (> 0).
	LockTimeout time.Duration
	// Retention is how long finished messages are kept for `queue show`
	// (> 0).
	Retention time.Duration
	// LeaseTimeout is how long a lease lasts before Reclaim may return
	// it to the due index (0 = leases expire only at the next Open). The
	// daemon derives it from the delivery timeouts (config
	// Delivery.LeaseTimeout), so that it outlasts any one delivery.
	LeaseTimeout time.Duration
	// MinFreeBytes is a free-space reserve on the file system of Path
	// (0 = none).
	// Below it Enqueue fails with ErrNoSpace, while Update and the other
	// bookkeeping writes still commit: mail already accepted must keep
	// moving.
	MinFreeBytes int64
	// SpoolDir holds the bodies larger than InlineMax, one file per
	// message named by its ID ("" = <dir of Path>/spool). One queue file
	// owns it: the start-up sweep removes files no open message names.
	SpoolDir string
	// InlineMax is the body size above which a body is spooled as a
	// file rather than stored in the queue file (0 = every non-empty
	// body is spooled; OptionsFrom sets DefaultInlineMax).
	InlineMax int64
	// NewQueue lets Open start a new, empty queue where the data dir had
	// one (its marker, MarkerPath, exists) but the file is missing or
	// empty: `serve --new-queue`, the operator's explicit word that the
	// mail in it is lost. Without it Open refuses with a *FileError.
	NewQueue bool
	// NoSync skips fsync. Benchmarks only: it voids the durability promise.
	NoSync bool
	// Now is the clock (nil = time.Now).
	Now func() time.Time
	// Logger (nil = slog.Default()).
	Logger *slog.Logger
}

// ErrClosed is returned by calls on a closed Queue.
var ErrClosed = errors.New("queue: closed")

// Queue is an open queue file. Create it with Open.
type Queue struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
	ids  *idGen

	// mu guards db: the commit goroutine swaps it when it must reopen
	// the file after a failed commit; readers hold the read lock.
	mu     sync.RWMutex
	db     *bbolt.DB
	dbErr  error // why db is nil, while a reopen keeps failing
	closed bool

	spoolDir string

	// testHookCommit, when set, runs inside the transaction that stores
	// message id, and fails it with its error (a test seam for the
	// durability order).
	testHookCommit func(id string) error

	ops      chan *op
	quit     chan struct{}
	loopDone chan struct{}
	commits  atomic.Uint64
	reads    atomic.Uint64 // see RecordsRead

	suppMu sync.RWMutex
	supp   map[string]struct{}
	// onSuppress is told of each address Suppress adds (OnSuppress).
	onSuppress atomic.Pointer[func(addr, reason string)]

	feed dueFeed // due.go: the domains whose earliest due time changed

	// retryLast names the domains whose last leased job came from the
	// retry lane: their first-attempt lane goes next (leaseDomain). Only
	// the commit goroutine reads or writes it (in ops and after them).
	retryLast map[string]struct{}

	// The event outbox (events.go): its config (nil: no sink, nothing
	// stored), the waiters for new events and the drops since Open.
	evCfg     atomic.Pointer[EventsConfig]
	evMu      sync.Mutex
	evWake    chan struct{}
	evDropped atomic.Int64
	backupMu  sync.Mutex // one Backup at a time
	pins      spoolPins  // body files a backup may still copy
}

// OptionsFrom maps the config onto Options: the queue file in data_dir,
// the [queue] keys, a lease that outlasts any one delivery and the inline
// body limit. The caller adds Logger (and, in tests, Now).
func OptionsFrom(cfg *config.Config) Options {
	return Options{
		Path:         filepath.Join(cfg.DataDir, "queue.db"),
		LockTimeout:  time.Duration(cfg.Queue.LockTimeout),
		Retention:    time.Duration(cfg.Queue.Retention),
		MinFreeBytes: int64(cfg.Queue.MinFreeSpace),
		LeaseTimeout: cfg.Delivery.LeaseTimeout(),
		InlineMax:    DefaultInlineMax,
	}
}

// check refuses options that make no sense; Open fills nothing in (the
// defaults live in the config layer, see OptionsFrom).
func (o *Options) check() error {
	switch {
	case o.Path == "":
		return errors.New("queue: Options.Path is empty")
	case o.LockTimeout <= 0:
		return errors.New("queue: Options.LockTimeout must be positive")
	case o.Retention <= 0:
		return errors.New("queue: Options.Retention must be positive")
	case o.LeaseTimeout < 0 || o.MinFreeBytes < 0 || o.InlineMax < 0:
		return errors.New("queue: Options.LeaseTimeout, MinFreeBytes and InlineMax must not be negative")
	}
	return nil
}

// Open opens (creating if needed) the queue file. Recipients left
// StateActive by a previous process are due again immediately.
func Open(o Options) (*Queue, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	q := &Queue{
		opts:     o,
		log:      o.Logger,
		now:      o.Now,
		ids:      newIDGen(),
		ops:      make(chan *op, 1024),
		quit:     make(chan struct{}),
		loopDone: make(chan struct{}),
		supp:     map[string]struct{}{},
	}
	if q.log == nil {
		q.log = slog.Default()
	}
	if q.now == nil {
		q.now = time.Now
	}
	q.spoolDir = o.SpoolDir
	if q.spoolDir == "" {
		q.spoolDir = filepath.Join(filepath.Dir(o.Path), "spool")
	}
	if err := os.MkdirAll(filepath.Dir(o.Path), 0o700); err != nil {
		return nil, storageErr("create data dir", err)
	}
	// Check before bbolt maps the file: a damaged file must be an error
	// naming it, never a panic or a fault, and a lost one must not
	// silently become an empty queue.
	if err := preflightFile(o); err != nil {
		return nil, err
	}
	if err := q.openSpoolDir(); err != nil {
		return nil, err
	}
	db, err := q.openDB()
	if err != nil {
		return nil, err
	}
	q.db = db
	existed, err := q.initDB()
	if err == nil {
		err = q.migrateDue()
	}
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := writeMarker(o.Path, q.now()); err != nil {
		_ = db.Close()
		return nil, err
	}
	// A queue file created just now owns no spool file yet; sweeping
	// would delete the bodies of another queue file sharing the
	// directory (a salvage copy being filled from the old file).
	if existed {
		if err := q.sweep(); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	if err := q.loadSuppressions(); err != nil {
		_ = db.Close()
		return nil, err
	}
	go q.commitLoop()
	return q, nil
}

// initialMmapSize is 1 GiB on 64-bit platforms; on 32-bit ones, where
// address space is scarce, bbolt's default.
const initialMmapSize = (1 << 30) * (strconv.IntSize / 64)

func (q *Queue) openDB() (*bbolt.DB, error) {
	db, err := bbolt.Open(q.opts.Path, 0o600, &bbolt.Options{
		Timeout: q.opts.LockTimeout,
		NoSync:  q.opts.NoSync,
		// The array freelist: its ids stay sorted, so writing the
		// freelist at every commit is a merge, where the hashmap sorts
		// every free span at every commit (issue 10: 71 % of the CPU in
		// the drain of a million messages). Pages are allocated one at
		// a time from its front (bodies are chunks, big ones spool
		// files): O(1) too. A queue half freed after 200,000 messages
		// (scattered free pages) enqueued 10,928 msg/s, 4,931 with the
		// hashmap; a drain of 200,000 ran at 3,800 falling to 2,800
		// msg/s, 2,400 falling to 1,000 with the hashmap. The file
		// format is the same for both.
		FreelistType: bbolt.FreelistArrayType,
		// The freelist is written at Close, not at every commit. bbolt
		// otherwise writes the whole list of free pages at each commit:
		// the list grows with every message a drain deletes (a million
		// drained leave ~800,000 free pages, 6 MB rewritten per
		// commit), and a drain of 400,000 ran at 1,078 msg/s, growing
		// the file (issue 10). Close commits once with the freelist, so
		// a clean restart reads it from its page (O(1) in the queue);
		// after a crash, or a reopen after a failed commit (a full
		// disk, EIO), bbolt rebuilds it at the first write by walking
		// the file's pages, as etcd, which always runs this way, does.
		// Set at open, so that opening writes nothing (a reopen while
		// fsync fails must still serve reads).
		NoFreelistSync: true,
		// bbolt remaps the file when it outgrows the mapping, under a
		// lock that every read transaction holds for its whole life: a
		// long one (a hot backup streaming the file, Backup) would stall
		// every commit that needs a bigger map until it ends. Mapping
		// 1 GiB from the start (address space, not memory: only the
		// pages read become resident) means no remap before the file
		// reaches 1 GiB, and one per GiB after that (bbolt's step).
		InitialMmapSize: initialMmapSize,
	})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("queue file %s is locked: is another sluice serve running on this data_dir?: %w", q.opts.Path, ErrLocked)
	}
	if err != nil {
		return nil, storageErr("open "+q.opts.Path, err)
	}
	return db, nil
}

// initDB creates the buckets, builds the counters of a file that has
// none yet (buildCounters) and returns leftover leases to the due index.
// existed reports whether the file already held a queue.
func (q *Queue) initDB() (existed bool, err error) {
	now := q.now()
	var recovered int
	err = q.db.Update(func(tx *bbolt.Tx) error {
		existed = tx.Bucket(bktMsgs) != nil
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = q.buildCounters(now)
	}
	if err != nil {
		return existed, storageErr("initialise "+q.opts.Path, err)
	}
	err = q.db.Update(func(tx *bbolt.Tx) error {
		w := newWtx(tx, now)
		var keys [][]byte
		if err := tx.Bucket(bktActive).ForEach(func(k, _ []byte) error {
			keys = append(keys, append([]byte(nil), k...))
			return nil
		}); err != nil {
			return err
		}
		for _, k := range keys {
			_, id, idx, ok := parseLeaseKey(k)
			if !ok {
				// A file written before leases had deadlines.
				var err error
				if id, idx, err = parseRcptKey(k); err != nil {
					return err
				}
				if err := tx.Bucket(bktActive).Delete(k); err != nil {
					return err
				}
			}
			r, err := w.rcpt(id, idx)
			if err != nil {
				return err
			}
			if r.State != StateActive {
				if err := tx.Bucket(bktActive).Delete(k); err != nil {
					return err
				}
				continue
			}
			if err := w.transition(id, idx, r, StateQueued, now); err != nil {
				return err
			}
			recovered++
		}
		return w.flush()
	})
	if err != nil {
		return existed, storageErr("initialise "+q.opts.Path, err)
	}
	if recovered > 0 {
		q.log.Info("queue: returned leftover leases to the due index", "recipients", recovered)
	}
	return existed, nil
}

// sweep runs sweepSpool against the open messages of the file.
func (q *Queue) sweep() error {
	n, err := q.sweepSpool(func(id string) (bool, error) {
		keep := false
		err := q.db.View(func(tx *bbolt.Tx) error {
			v := tx.Bucket(bktMsgs).Get([]byte(id))
			if v == nil {
				return nil
			}
			m, err := decodeMsg(v)
			if err != nil {
				return err
			}
			keep = m.Spooled && m.Open > 0
			return nil
		})
		return keep, err
	})
	if n > 0 {
		q.log.Info("queue: removed leftover spool files", "files", n, "dir", q.spoolDir)
	}
	return err
}

// view runs fn in a read transaction on the current file.
func (q *Queue) view(fn func(tx *bbolt.Tx) error) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return ErrClosed
	}
	if q.db == nil {
		return storageErr("read", q.dbErr)
	}
	return q.db.View(fn)
}

// Commits returns the number of write transactions committed since Open,
// so that a benchmark can report fsyncs per message.
func (q *Queue) Commits() uint64 { return q.commits.Load() }

// Close stops the commit goroutine, failing writes still waiting with
// ErrClosed, and closes the file.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.mu.Unlock()
	close(q.quit)
	<-q.loopDone
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.db == nil {
		return nil
	}
	// One last commit with the freelist (see openDB), under bbolt's
	// writer lock, which every commit reading the flag holds too.
	syncErr := q.db.Update(func(tx *bbolt.Tx) error {
		tx.DB().NoFreelistSync = false
		return nil
	})
	err := errors.Join(syncErr, q.db.Close())
	q.db = nil
	if err != nil {
		return fmt.Errorf("queue: close: %w", err)
	}
	return nil
}
