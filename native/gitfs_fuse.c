/*
 * The FUSE side of git-fs: a libfuse3 low-level session that answers the kernel from an
 * immutable inode table and a bounded content cache, and asks JavaScript only for what it
 * does not know yet (a directory's entries, a file's verified content).
 *
 * Why native: fuse-native crosses from the FUSE thread to the JS main thread for every
 * operation (lookup, getattr, open, read, flush, release): ~0.5 ms per file before any git
 * work (field notes), 5x `git archive` on a Debian tree. Here a cold read of a file costs
 * one crossing (its content), a directory one crossing (its entries), and everything else
 * (lookup, getattr, readdir, readlink, xattrs, open/release, repeated reads) is answered on
 * the FUSE worker threads without touching JS. A commit never changes, so the kernel may
 * cache entries, attributes, symlinks, directory listings and pages for the mount's life.
 *
 * Threads: libfuse's multi-threaded loop runs on its own threads. A worker that needs JS
 * posts a message through a napi threadsafe function and waits on a condition variable;
 * JS answers with complete(handle, id, kind, ino, errno, payload). Unmount wakes every
 * waiter with EIO before joining, so JS never deadlocks against a blocked worker.
 *
 * Switching revisions (swap, see docs/live.md): JS hands over, in one batch, the new
 * children of every directory whose listing changed and the new attributes of directories
 * that stay. The batch is applied under the lock in one step, so a request sees either the
 * old tree or the new one. Paths that did not change keep their inode (and the kernel keeps
 * their cached pages); what changed gets new inodes, and the old ones stay readable for as
 * long as the kernel holds them (an open file reads its old content to the end). The kernel's
 * references are counted (lookup and readdirplus replies minus forgets): an inode no
 * directory lists any more is freed, with its cached content, when the kernel forgets it.
 * The kernel's cached entries and attributes of what changed are invalidated afterwards from
 * a thread of its own, never from a FUSE worker and never with the lock held: an
 * invalidation waits for the kernel's locks on the directory, which a request in progress
 * may hold while a worker answers it (libfuse: notify_inval_entry must not run in the path
 * of a related operation or under a lock such an operation needs).
 */
#include "gitroot_native.h"
#include <fuse_lowlevel.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define KIND_LOADDIR 1
#define KIND_CONTENT 2
#define KIND_HINT 3     /* fire-and-forget: a prefetched file is being read */
#define KIND_FREED 4    /* fire-and-forget: inodes were freed (JS drains them with drainFreed) */

/* Ops of a swap batch (see gitfs_swap). */
#define SWAP_ATTR 1
#define SWAP_CHILDREN 2

/* A commit is immutable: let the kernel cache for (practically) ever. */
#define FOREVER 31536000.0

typedef struct xattr {
  char *name;
  char *value;
  uint32_t len;
} xattr_t;

typedef struct child {
  char *name;
  uint64_t ino;
} child_t;

typedef struct content {
  uint64_t ino;
  char *data;        /* in memory (ring or malloc), or NULL when served from fd */
  int in_ring;       /* data lives in the ring at ring_off */
  uint64_t ring_off;
  struct content *fifo_prev, *fifo_next; /* ring entries in allocation order */
  int fd;            /* spill file (already unlinked) or -1 */
  uint64_t size;
  int refs;          /* readers replying from it right now */
  int prefetched;    /* installed ahead of demand; not read yet */
  struct content *prev, *next; /* LRU list, most recent at head */
} content_t;

typedef struct inode {
  uint32_t mode, uid, gid, nlink;
  uint64_t size, rdev;
  char *link;
  xattr_t *xattrs;
  uint32_t nxattrs;
  int loaded;                  /* directories: children are known */
  uint64_t parent;
  child_t *children;
  uint32_t nchildren;
  content_t *content;
  uint64_t nlookup;            /* the kernel's references: entry replies minus forgets */
  uint32_t nparents;           /* children arrays listing it (hardlinks: several) */
  double time;                 /* its timestamps: the commit time of the revision that made it */
} inode_t;

typedef struct call {
  uint64_t id;
  int kind;
  uint64_t ino;
  int done;
  int err;
  pthread_cond_t cond;
  struct call *next;
} call_t;

typedef struct msg {
  uint64_t id;
  int kind;
  uint64_t ino;
} msg_t;

typedef struct gitfs {
  pthread_mutex_t lock;
  inode_t **inodes;
  uint64_t cap;
  uint64_t count;
  content_t *lru_head, *lru_tail;
  uint64_t cache_bytes, cache_limit;  /* malloc'd content only */
  char *ring;                         /* circular log of file contents, touched once */
  uint64_t ring_size, ring_head;
  content_t *fifo_first, *fifo_last;  /* ring entries, oldest first */
  uint32_t cache_fds, fd_limit;
  call_t *calls;
  uint64_t next_id;
  int closing;
  double time;
  struct fuse_session *se;
  pthread_t loop_thread;
  int loop_started;
  int loop_status;
  int joined;
  unsigned max_threads;
  int no_open;                        /* kernel supports zero-message open */
  char *own_mount;                    /* the mountpoint, when this process mounted it itself (root) */
  napi_threadsafe_function tsfn;      /* requests to JS */
  napi_threadsafe_function exit_tsfn; /* loop ended (unmounted from outside) */
  uint64_t *freed;                    /* inodes freed since JS last drained them */
  uint64_t nfreed, freed_cap;
  pthread_t notify_thread;            /* sends a swap's invalidations */
  int notifying;                      /* a notify thread was started and not joined yet */
  /* counters */
  uint64_t n_js_calls, n_lookups, n_reads, n_read_bytes, n_evictions, n_opens;
  uint64_t n_swaps, n_freed_total, n_inval_entries, n_inval_inodes;
} gitfs_t;

/* ---------- inode table (caller holds g->lock) ---------- */

static inode_t *get_inode(gitfs_t *g, uint64_t ino) {
  return ino < g->cap ? g->inodes[ino] : NULL;
}

static int ensure_cap(gitfs_t *g, uint64_t ino) {
  if (ino < g->cap) return 0;
  uint64_t ncap = g->cap ? g->cap : 1024;
  while (ncap <= ino) ncap *= 2;
  inode_t **n = realloc(g->inodes, ncap * sizeof *n);
  if (!n) return -1;
  memset(n + g->cap, 0, (ncap - g->cap) * sizeof *n);
  g->inodes = n;
  g->cap = ncap;
  return 0;
}

static void fill_stat(gitfs_t *g, uint64_t ino, const inode_t *in, struct stat *st) {
  memset(st, 0, sizeof *st);
  st->st_ino = ino;
  st->st_mode = in->mode;
  st->st_nlink = in->nlink;
  st->st_uid = in->uid;
  st->st_gid = in->gid;
  st->st_rdev = in->rdev;
  st->st_size = (off_t)in->size;
  st->st_blksize = 4096;
  st->st_blocks = (blkcnt_t)((in->size + 511) / 512);
  st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec = (time_t)in->time;
}

/* Packed entry format written by lib/gitfs/entry-codec.ts (little endian):
 * u64 ino, u32 mode, u32 uid, u32 gid, u32 nlink, u64 size, u64 rdev,
 * u16 namelen, name, u32 linklen, link, u16 nxattrs, { u16 nlen, name, u32 vlen, value }. */
typedef struct reader {
  const uint8_t *p, *end;
  int bad;
} reader_t;

static uint64_t rd(reader_t *r, int n) {
  if (r->bad || r->end - r->p < n) { r->bad = 1; return 0; }
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v |= (uint64_t)r->p[i] << (8 * i);
  r->p += n;
  return v;
}

/* Skips `n` bytes. */
static void rd_skip(reader_t *r, uint64_t n) {
  if (r->bad || (uint64_t)(r->end - r->p) < n) { r->bad = 1; return; }
  r->p += n;
}

static char *rd_str(reader_t *r, uint64_t len) {
  if (r->bad || (uint64_t)(r->end - r->p) < len) { r->bad = 1; return NULL; }
  char *s = malloc(len + 1);
  if (!s) { r->bad = 1; return NULL; }
  memcpy(s, r->p, len);
  s[len] = 0;
  r->p += len;
  return s;
}

/* Reads one entry; creates its inode if new (hardlinks share one). Returns its ino and
 * name (caller owns name), 0 on malformed input. */
static uint64_t install_entry(gitfs_t *g, reader_t *r, uint64_t parent, char **name_out) {
  uint64_t ino = rd(r, 8);
  uint32_t mode = (uint32_t)rd(r, 4), uid = (uint32_t)rd(r, 4), gid = (uint32_t)rd(r, 4),
           nlink = (uint32_t)rd(r, 4);
  uint64_t size = rd(r, 8), rdev = rd(r, 8);
  char *name = rd_str(r, rd(r, 2));
  uint64_t linklen = rd(r, 4);
  char *link = linklen ? rd_str(r, linklen) : NULL;
  uint32_t nx = (uint32_t)rd(r, 2);
  xattr_t *xs = nx ? calloc(nx, sizeof *xs) : NULL;
  for (uint32_t i = 0; i < nx && !r->bad; i++) {
    xs[i].name = rd_str(r, rd(r, 2));
    xs[i].len = (uint32_t)rd(r, 4);
    xs[i].value = rd_str(r, xs[i].len);
  }
  if (r->bad || ino == 0 || ensure_cap(g, ino) < 0) {
    free(name); free(link);
    for (uint32_t i = 0; i < nx; i++) { free(xs[i].name); free(xs[i].value); }
    free(xs);
    r->bad = 1;
    return 0;
  }
  if (g->inodes[ino]) { /* a hardlink seen before, or a repeated load */
    free(link);
    for (uint32_t i = 0; i < nx; i++) { free(xs[i].name); free(xs[i].value); }
    free(xs);
  } else {
    inode_t *in = calloc(1, sizeof *in);
    in->mode = mode; in->uid = uid; in->gid = gid; in->nlink = nlink;
    in->size = size; in->rdev = rdev; in->link = link;
    in->xattrs = xs; in->nxattrs = nx; in->parent = parent;
    in->time = g->time;
    g->inodes[ino] = in;
    g->count++;
  }
  *name_out = name;
  return ino;
}

static int child_cmp(const void *a, const void *b) {
  return strcmp(((const child_t *)a)->name, ((const child_t *)b)->name);
}

/* Installs a directory's entries: u32 count, then count packed entries. */
static int install_dir(gitfs_t *g, uint64_t dir, const uint8_t *buf, size_t len) {
  inode_t *d = get_inode(g, dir);
  if (!d) return EIO;
  if (d->loaded) return 0;
  reader_t r = {buf, buf + len, 0};
  uint32_t n = (uint32_t)rd(&r, 4);
  child_t *kids = n ? calloc(n, sizeof *kids) : NULL;
  uint32_t i;
  for (i = 0; i < n; i++) {
    kids[i].ino = install_entry(g, &r, dir, &kids[i].name);
    if (!kids[i].ino) break;
    d = get_inode(g, dir); /* the table may have moved */
  }
  if (i < n) {
    for (uint32_t j = 0; j < i; j++) free(kids[j].name);
    free(kids);
    return EIO;
  }
  qsort(kids, n, sizeof *kids, child_cmp);
  for (i = 0; i < n; i++) get_inode(g, kids[i].ino)->nparents++;
  d = get_inode(g, dir);
  d->children = kids;
  d->nchildren = n;
  d->loaded = 1;
  return 0;
}

/* ---------- content cache (caller holds g->lock) ---------- */

static void lru_unlink(gitfs_t *g, content_t *c) {
  if (c->prev) c->prev->next = c->next; else g->lru_head = c->next;
  if (c->next) c->next->prev = c->prev; else g->lru_tail = c->prev;
  c->prev = c->next = NULL;
}

static void lru_push(gitfs_t *g, content_t *c) {
  c->prev = NULL;
  c->next = g->lru_head;
  if (g->lru_head) g->lru_head->prev = c;
  g->lru_head = c;
  if (!g->lru_tail) g->lru_tail = c;
}

static void content_free(gitfs_t *g, content_t *c) {
  if (c->in_ring) {
    if (c->fifo_prev) c->fifo_prev->fifo_next = c->fifo_next; else g->fifo_first = c->fifo_next;
    if (c->fifo_next) c->fifo_next->fifo_prev = c->fifo_prev; else g->fifo_last = c->fifo_prev;
  } else if (c->data) {
    free(c->data);
    g->cache_bytes -= c->size;
  }
  if (c->fd >= 0) { close(c->fd); g->cache_fds--; }
  free(c);
}

/* Drops a cached content: the inode forgets it, the memory is released. */
static void drop_content(gitfs_t *g, content_t *c) {
  inode_t *in = get_inode(g, c->ino);
  if (in && in->content == c) in->content = NULL;
  lru_unlink(g, c);
  content_free(g, c);
  g->n_evictions++;
}

static void evict(gitfs_t *g, content_t *keep) {
  content_t *c = g->lru_tail;
  while (c && (g->cache_bytes > g->cache_limit || g->cache_fds > g->fd_limit)) {
    content_t *prev = c->prev;
    if (c != keep && c->refs == 0 && !c->in_ring) drop_content(g, c);
    c = prev;
  }
}

/*
 * The ring: file contents are copied into one preallocated region used as a circular log,
 * oldest entries overwritten first. No malloc/free, page faults or munmap per file (they
 * cost ~15% of a cold full read as mmapped blocks), and memory is exactly the ring's size.
 * FIFO is enough here: the kernel keeps a file's pages once it has read them, so content
 * is needed only briefly. Returns NULL when `n` does not fit (over half the ring) or when
 * the space is held by a reader right now; the caller then mallocs.
 */
static char *ring_alloc(gitfs_t *g, uint64_t n, uint64_t *off) {
  if (!g->ring || n == 0 || n > g->ring_size / 2) return NULL;
  for (;;) {
    content_t *old = g->fifo_first;
    if (!old) g->ring_head = 0;
    uint64_t head = g->ring_head, tail = old ? old->ring_off : 0;
    if (!old || head > tail) {
      if (n <= g->ring_size - head) { *off = head; g->ring_head = head + n; return g->ring + head; }
      if (old && n <= tail) { *off = 0; g->ring_head = n; return g->ring; }
      if (!old) return NULL;
    } else if (n <= tail - head) {
      *off = head; g->ring_head = head + n; return g->ring + head;
    }
    if (old->refs > 0) return NULL;
    drop_content(g, old);
  }
}

/* Caches a file's content: `src` (copied into the ring, or into malloc'd memory), or an fd. */
static int install_content(gitfs_t *g, uint64_t ino, const char *src, int fd, uint64_t size, int prefetched) {
  inode_t *in = get_inode(g, ino);
  if (!in || in->content) { /* unknown inode, or another request won the race */
    if (fd >= 0) close(fd);
    return 0;
  }
  content_t *c = calloc(1, sizeof *c);
  if (!c) return ENOMEM;
  c->ino = ino; c->fd = fd; c->size = size; c->prefetched = prefetched;
  if (fd < 0) {
    uint64_t off;
    char *dst = ring_alloc(g, size, &off);
    if (dst) {
      c->in_ring = 1;
      c->ring_off = off;
      c->fifo_prev = g->fifo_last;
      if (g->fifo_last) g->fifo_last->fifo_next = c; else g->fifo_first = c;
      g->fifo_last = c;
    } else {
      dst = malloc(size ? size : 1);
      if (!dst) { free(c); return ENOMEM; }
      g->cache_bytes += size;
    }
    memcpy(dst, src, size);
    c->data = dst;
  } else {
    g->cache_fds++;
  }
  in->content = c;
  lru_push(g, c);
  evict(g, c);
  return 0;
}

/* ---------- asking JS ---------- */

static int ask_js(gitfs_t *g, int kind, uint64_t ino) {
  call_t c;
  memset(&c, 0, sizeof c);
  pthread_cond_init(&c.cond, NULL);
  c.kind = kind;
  c.ino = ino;
  pthread_mutex_lock(&g->lock);
  if (g->closing) { pthread_mutex_unlock(&g->lock); pthread_cond_destroy(&c.cond); return EIO; }
  c.id = ++g->next_id;
  c.next = g->calls;
  g->calls = &c;
  g->n_js_calls++;
  pthread_mutex_unlock(&g->lock);

  msg_t *m = malloc(sizeof *m);
  m->id = c.id; m->kind = kind; m->ino = ino;
  napi_status st = napi_call_threadsafe_function(g->tsfn, m, napi_tsfn_nonblocking);

  pthread_mutex_lock(&g->lock);
  if (st != napi_ok) { free(m); c.done = 1; c.err = EIO; }
  while (!c.done) pthread_cond_wait(&c.cond, &g->lock);
  for (call_t **pp = &g->calls; *pp; pp = &(*pp)->next)
    if (*pp == &c) { *pp = c.next; break; }
  pthread_mutex_unlock(&g->lock);
  pthread_cond_destroy(&c.cond);
  return c.err;
}

/* Makes sure a directory's children are installed. Returns 0 or an errno. */
static int ensure_loaded(gitfs_t *g, uint64_t ino) {
  pthread_mutex_lock(&g->lock);
  inode_t *in = get_inode(g, ino);
  int err = !in ? ENOENT : !S_ISDIR(in->mode) ? ENOTDIR : 0;
  int loaded = in && in->loaded;
  pthread_mutex_unlock(&g->lock);
  if (err || loaded) return err;
  err = ask_js(g, KIND_LOADDIR, ino);
  if (err) return err;
  pthread_mutex_lock(&g->lock);
  in = get_inode(g, ino);
  loaded = in && in->loaded;
  pthread_mutex_unlock(&g->lock);
  return loaded ? 0 : EIO;
}

/* ---------- lifetime of inodes (caller holds g->lock) ---------- */

/* Tells JS (once per batch) that inodes were freed; it drains them with drainFreed. */
static void record_freed(gitfs_t *g, uint64_t ino) {
  if (g->nfreed == g->freed_cap) {
    uint64_t ncap = g->freed_cap ? g->freed_cap * 2 : 256;
    uint64_t *n = realloc(g->freed, ncap * sizeof *n);
    if (!n) return; /* JS keeps a stale node: harmless, only memory */
    g->freed = n;
    g->freed_cap = ncap;
  }
  if (g->nfreed++ == 0 && g->tsfn) {
    msg_t *m = malloc(sizeof *m);
    if (m) {
      m->id = 0; m->kind = KIND_FREED; m->ino = 0;
      if (napi_call_threadsafe_function(g->tsfn, m, napi_tsfn_nonblocking) != napi_ok) free(m);
    }
  }
  g->freed[g->nfreed - 1] = ino;
}

/*
 * Frees `ino` if nothing needs it any more: no directory lists it and the kernel holds no
 * reference. Its children lose a parent and may go too (a removed directory the kernel
 * forgot). Content a reader is replying from right now stays in the cache lists until it
 * is evicted as usual; it only stops belonging to the inode.
 */
static void maybe_free(gitfs_t *g, uint64_t ino) {
  uint64_t stack_small[64], *stack = stack_small, cap = 64, top = 0;
  stack[top++] = ino;
  while (top) {
    uint64_t i = stack[--top];
    inode_t *in = get_inode(g, i);
    if (!in || i == FUSE_ROOT_ID || in->nlookup || in->nparents) continue;
    for (uint32_t k = 0; k < in->nchildren; k++) {
      inode_t *c = get_inode(g, in->children[k].ino);
      if (c && c->nparents) c->nparents--;
      if (top == cap) {
        uint64_t *n = malloc(cap * 2 * sizeof *n);
        if (!n) break;
        memcpy(n, stack, top * sizeof *n);
        if (stack != stack_small) free(stack);
        stack = n;
        cap *= 2;
      }
      stack[top++] = in->children[k].ino;
      free(in->children[k].name);
    }
    free(in->children);
    if (in->content) {
      content_t *c = in->content;
      in->content = NULL;
      if (c->refs == 0) { lru_unlink(g, c); content_free(g, c); }
    }
    free(in->link);
    for (uint32_t k = 0; k < in->nxattrs; k++) { free(in->xattrs[k].name); free(in->xattrs[k].value); }
    free(in->xattrs);
    free(in);
    g->inodes[i] = NULL;
    g->count--;
    g->n_freed_total++;
    record_freed(g, i);
  }
  if (stack != stack_small) free(stack);
}

/* The kernel dropped `n` references to `ino`. */
static void forget_locked(gitfs_t *g, uint64_t ino, uint64_t n) {
  inode_t *in = get_inode(g, ino);
  if (!in) return;
  in->nlookup = in->nlookup > n ? in->nlookup - n : 0;
  if (in->nlookup == 0) maybe_free(g, ino);
}

/* A reply that would have given the kernel a reference did not reach it: take it back. */
static void unref_unsent(gitfs_t *g, uint64_t ino) {
  pthread_mutex_lock(&g->lock);
  forget_locked(g, ino, 1);
  pthread_mutex_unlock(&g->lock);
}

/* Whether the kernel may have cached something of `ino` (notifying about others is useless). */
static int kernel_knows(const inode_t *in, uint64_t ino) {
  return ino == FUSE_ROOT_ID || in->nlookup > 0;
}

/* ---------- FUSE operations ---------- */

static void op_init(void *userdata, struct fuse_conn_info *conn) {
  gitfs_t *g = userdata;
  g->no_open = (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) != 0;
  if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  if (conn->capable & FUSE_CAP_READDIRPLUS) {
    conn->want |= FUSE_CAP_READDIRPLUS;
    conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO; /* always plus: saves a lookup per entry */
  }
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;      /* content never changes */
  if (conn->capable & FUSE_CAP_SPLICE_WRITE) conn->want |= FUSE_CAP_SPLICE_WRITE;
  conn->want |= FUSE_CAP_ASYNC_READ;
}

static void reply_entry_locked_unlock(gitfs_t *g, fuse_req_t req, uint64_t ino, inode_t *in) {
  struct fuse_entry_param e;
  memset(&e, 0, sizeof e);
  e.ino = ino;
  e.attr_timeout = FOREVER;
  e.entry_timeout = FOREVER;
  if (in) { fill_stat(g, ino, in, &e.attr); in->nlookup++; }
  pthread_mutex_unlock(&g->lock);
  /* ino 0: a negative entry, cached by the kernel too. A reply that fails (an interrupted
   * request) gave the kernel no reference. */
  if (fuse_reply_entry(req, &e) != 0 && in) unref_unsent(g, ino);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  gitfs_t *g = fuse_req_userdata(req);
  __atomic_fetch_add(&g->n_lookups, 1, __ATOMIC_RELAXED);
  int err = ensure_loaded(g, parent);
  if (err) { fuse_reply_err(req, err); return; }
  pthread_mutex_lock(&g->lock);
  inode_t *d = get_inode(g, parent);
  if (!d) { pthread_mutex_unlock(&g->lock); fuse_reply_err(req, ENOENT); return; }
  child_t key = {(char *)name, 0};
  child_t *hit = d->nchildren ? bsearch(&key, d->children, d->nchildren, sizeof key, child_cmp) : NULL;
  if (!hit) { reply_entry_locked_unlock(g, req, 0, NULL); return; }
  reply_entry_locked_unlock(g, req, hit->ino, get_inode(g, hit->ino));
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  gitfs_t *g = fuse_req_userdata(req);
  struct stat st;
  pthread_mutex_lock(&g->lock);
  inode_t *in = get_inode(g, ino);
  if (!in) { pthread_mutex_unlock(&g->lock); fuse_reply_err(req, ENOENT); return; }
  fill_stat(g, ino, in, &st);
  pthread_mutex_unlock(&g->lock);
  fuse_reply_attr(req, &st, FOREVER);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  gitfs_t *g = fuse_req_userdata(req);
  pthread_mutex_lock(&g->lock);
  inode_t *in = get_inode(g, ino);
  if (!in || !S_ISLNK(in->mode) || !in->link) {
    pthread_mutex_unlock(&g->lock);
    fuse_reply_err(req, in ? EINVAL : ENOENT);
    return;
  }
  char *copy = strdup(in->link);
  pthread_mutex_unlock(&g->lock);
  fuse_reply_readlink(req, copy);
  free(copy);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  gitfs_t *g = fuse_req_userdata(req);
  int err = ensure_loaded(g, ino);
  if (err) { fuse_reply_err(req, err); return; }
  fi->cache_readdir = 1;
  fi->keep_cache = 1;
  fuse_reply_open(req, fi);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus) {
  gitfs_t *g = fuse_req_userdata(req);
  int err = ensure_loaded(g, ino);
  if (err) { fuse_reply_err(req, err); return; }
  char *buf = malloc(size);
  size_t used = 0;
  uint64_t *counted = plus ? malloc((size / 24 + 1) * sizeof *counted) : NULL; /* an entry takes > 24 bytes */
  size_t ncounted = 0;
  pthread_mutex_lock(&g->lock);
  inode_t *d = get_inode(g, ino);
  uint64_t total = d ? (uint64_t)d->nchildren + 2 : 0;
  for (uint64_t i = (uint64_t)off; i < total; i++) {
    const char *name;
    uint64_t cino;
    if (i == 0) { name = "."; cino = ino; }
    else if (i == 1) { name = ".."; cino = d->parent ? d->parent : ino; }
    else { name = d->children[i - 2].name; cino = d->children[i - 2].ino; }
    inode_t *c = get_inode(g, cino);
    size_t need;
    if (plus) {
      struct fuse_entry_param e;
      memset(&e, 0, sizeof e);
      e.ino = cino;
      e.attr_timeout = FOREVER;
      e.entry_timeout = FOREVER;
      if (c) fill_stat(g, cino, c, &e.attr);
      need = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, (off_t)(i + 1));
    } else {
      struct stat st;
      memset(&st, 0, sizeof st);
      st.st_ino = cino;
      st.st_mode = c ? c->mode : S_IFDIR;
      need = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)(i + 1));
    }
    if (need > size - used) break;
    used += need;
    /* readdirplus gives the kernel a reference to every entry but "." and ".." */
    if (plus && i >= 2 && c && counted) { c->nlookup++; counted[ncounted++] = cino; }
  }
  pthread_mutex_unlock(&g->lock);
  if (fuse_reply_buf(req, buf, used) != 0 && ncounted) {
    pthread_mutex_lock(&g->lock);
    for (size_t k = 0; k < ncounted; k++) forget_locked(g, counted[k], 1);
    pthread_mutex_unlock(&g->lock);
  }
  free(counted);
  free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  do_readdir(req, ino, size, off, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  do_readdir(req, ino, size, off, 1);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  if ((fi->flags & O_ACCMODE) != O_RDONLY) { fuse_reply_err(req, EROFS); return; }
  gitfs_t *g = fuse_req_userdata(req);
  __atomic_fetch_add(&g->n_opens, 1, __ATOMIC_RELAXED);
  /* Zero-message open: the kernel stops sending open/release for files and keeps their
   * pages cached (measured: warm re-read of a Debian tree 0.45 s -> 0.16 s). Writes are
   * refused by the read-only mount itself. */
  if (g->no_open) { fuse_reply_err(req, ENOSYS); return; }
  fi->keep_cache = 1; /* pages stay valid across opens: the blob never changes */
  fi->noflush = 1;
  fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  gitfs_t *g = fuse_req_userdata(req);
  __atomic_fetch_add(&g->n_reads, 1, __ATOMIC_RELAXED);
  pthread_mutex_lock(&g->lock);
  inode_t *in = get_inode(g, ino);
  if (!in) { pthread_mutex_unlock(&g->lock); fuse_reply_err(req, ENOENT); return; }
  if ((uint64_t)off >= in->size) { pthread_mutex_unlock(&g->lock); fuse_reply_buf(req, NULL, 0); return; }
  content_t *c = in->content;
  /* JS may answer "already cached" (prefetched); if it was evicted since, ask once more. */
  for (int attempt = 0; !c && attempt < 3; attempt++) {
    pthread_mutex_unlock(&g->lock);
    int err = ask_js(g, KIND_CONTENT, ino);
    if (err) { fuse_reply_err(req, err); return; }
    pthread_mutex_lock(&g->lock);
    in = get_inode(g, ino);
    c = in ? in->content : NULL;
  }
  if (!c) { pthread_mutex_unlock(&g->lock); fuse_reply_err(req, EIO); return; }
  c->refs++;
  if (g->lru_head != c) { lru_unlink(g, c); lru_push(g, c); }
  int hint = c->prefetched;
  c->prefetched = 0;
  pthread_mutex_unlock(&g->lock);
  if (hint) { /* tell JS to keep reading ahead; nobody waits for this */
    msg_t *m = malloc(sizeof *m);
    m->id = 0; m->kind = KIND_HINT; m->ino = ino;
    if (napi_call_threadsafe_function(g->tsfn, m, napi_tsfn_nonblocking) != napi_ok) free(m);
  }

  size_t n = (uint64_t)off >= c->size ? 0 : (size_t)(c->size - (uint64_t)off < size ? c->size - (uint64_t)off : size);
  __atomic_fetch_add(&g->n_read_bytes, n, __ATOMIC_RELAXED);
  if (c->data || n == 0) {
    fuse_reply_buf(req, c->data ? c->data + off : NULL, n);
  } else {
    struct fuse_bufvec bv = FUSE_BUFVEC_INIT(n);
    bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
    bv.buf[0].fd = c->fd;
    bv.buf[0].pos = off;
    fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
  }

  pthread_mutex_lock(&g->lock);
  c->refs--;
  if (c->refs == 0 && (g->cache_bytes > g->cache_limit || g->cache_fds > g->fd_limit)) evict(g, NULL);
  pthread_mutex_unlock(&g->lock);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  gitfs_t *g = fuse_req_userdata(req);
  pthread_mutex_lock(&g->lock);
  inode_t *in = get_inode(g, ino);
  xattr_t *x = NULL;
  for (uint32_t i = 0; in && i < in->nxattrs; i++)
    if (strcmp(in->xattrs[i].name, name) == 0) { x = &in->xattrs[i]; break; }
  if (!x) { pthread_mutex_unlock(&g->lock); fuse_reply_err(req, in ? ENODATA : ENOENT); return; }
  if (size == 0) { uint32_t len = x->len; pthread_mutex_unlock(&g->lock); fuse_reply_xattr(req, len); return; }
  if (size < x->len) { pthread_mutex_unlock(&g->lock); fuse_reply_err(req, ERANGE); return; }
  char *copy = malloc(x->len ? x->len : 1);
  uint32_t len = x->len;
  memcpy(copy, x->value, len);
  pthread_mutex_unlock(&g->lock);
  fuse_reply_buf(req, copy, len);
  free(copy);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  gitfs_t *g = fuse_req_userdata(req);
  pthread_mutex_lock(&g->lock);
  inode_t *in = get_inode(g, ino);
  if (!in) { pthread_mutex_unlock(&g->lock); fuse_reply_err(req, ENOENT); return; }
  size_t need = 0;
  for (uint32_t i = 0; i < in->nxattrs; i++) need += strlen(in->xattrs[i].name) + 1;
  if (size == 0) { pthread_mutex_unlock(&g->lock); fuse_reply_xattr(req, need); return; }
  if (size < need) { pthread_mutex_unlock(&g->lock); fuse_reply_err(req, ERANGE); return; }
  char *buf = malloc(need ? need : 1), *p = buf;
  for (uint32_t i = 0; i < in->nxattrs; i++) {
    size_t l = strlen(in->xattrs[i].name) + 1;
    memcpy(p, in->xattrs[i].name, l);
    p += l;
  }
  pthread_mutex_unlock(&g->lock);
  fuse_reply_buf(req, buf, need);
  free(buf);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino) {
  gitfs_t *g = fuse_req_userdata(req);
  struct statvfs sv;
  memset(&sv, 0, sizeof sv);
  sv.f_bsize = 4096;
  sv.f_frsize = 4096;
  pthread_mutex_lock(&g->lock);
  sv.f_files = g->count;
  pthread_mutex_unlock(&g->lock);
  sv.f_namemax = 255;
  fuse_reply_statfs(req, &sv);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  gitfs_t *g = fuse_req_userdata(req);
  pthread_mutex_lock(&g->lock);
  forget_locked(g, ino, nlookup);
  pthread_mutex_unlock(&g->lock);
  fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
  gitfs_t *g = fuse_req_userdata(req);
  pthread_mutex_lock(&g->lock);
  for (size_t i = 0; i < count; i++) forget_locked(g, forgets[i].ino, forgets[i].nlookup);
  pthread_mutex_unlock(&g->lock);
  fuse_reply_none(req);
}

static const struct fuse_lowlevel_ops gitfs_ops = {
  .init = op_init,
  .forget = op_forget,
  .forget_multi = op_forget_multi,
  .lookup = op_lookup,
  .getattr = op_getattr,
  .readlink = op_readlink,
  .opendir = op_opendir,
  .readdir = op_readdir,
  .readdirplus = op_readdirplus,
  .open = op_open,
  .read = op_read,
  .getxattr = op_getxattr,
  .listxattr = op_listxattr,
  .statfs = op_statfs,
};

/* Refuses new JS calls and wakes every waiting one with EIO (unmount, or the loop ended). */
static void close_calls(gitfs_t *g) {
  pthread_mutex_lock(&g->lock);
  g->closing = 1;
  for (call_t *c = g->calls; c; c = c->next) { c->done = 1; c->err = EIO; pthread_cond_signal(&c->cond); }
  pthread_mutex_unlock(&g->lock);
}

/* ---------- the loop thread ---------- */

static void *loop_main(void *arg) {
  gitfs_t *g = arg;
  struct fuse_loop_config *cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(cfg, g->max_threads);
  fuse_loop_cfg_set_idle_threads(cfg, g->max_threads);
  g->loop_status = fuse_session_loop_mt(g->se, cfg);
  fuse_loop_cfg_destroy(cfg);
  /* Wake anybody still waiting (there should be none: the kernel is gone). */
  close_calls(g);
  napi_call_threadsafe_function(g->exit_tsfn, NULL, napi_tsfn_nonblocking);
  return NULL;
}

/* ---------- JS glue ---------- */

static void call_js(napi_env env, napi_value js_cb, void *context, void *data) {
  msg_t *m = data;
  gitfs_t *g = context;
  if (!env) { free(m); return; }
  napi_value args[3], undef;
  napi_create_int32(env, m->kind, &args[0]);
  napi_create_double(env, (double)m->ino, &args[1]);
  napi_create_double(env, (double)m->id, &args[2]);
  napi_get_undefined(env, &undef);
  napi_status st = napi_call_function(env, undef, js_cb, 3, args, NULL);
  if (st != napi_ok) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    pthread_mutex_lock(&g->lock);
    for (call_t *c = g->calls; c; c = c->next)
      if (c->id == m->id) { c->done = 1; c->err = EIO; pthread_cond_signal(&c->cond); }
    pthread_mutex_unlock(&g->lock);
  }
  free(m);
}

static void call_exit(napi_env env, napi_value js_cb, void *context, void *data) {
  gitfs_t *g = context;
  if (!env) return;
  napi_value undef, status;
  napi_get_undefined(env, &undef);
  napi_create_int32(env, g->loop_status, &status);
  napi_call_function(env, undef, js_cb, 1, &status, NULL);
}

static char last_log[1024];
static void capture_log(enum fuse_log_level level, const char *fmt, va_list ap) {
  if (level <= FUSE_LOG_ERR) {
    vsnprintf(last_log, sizeof last_log, fmt, ap);
    size_t l = strlen(last_log);
    while (l && last_log[l - 1] == '\n') last_log[--l] = 0;
  }
}

static napi_value throw_msg(napi_env env, const char *code, const char *msg) {
  napi_throw_error(env, code, msg);
  return NULL;
}

static gitfs_t *get_handle(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return p;
}

static double get_num_prop(napi_env env, napi_value obj, const char *name, double dflt) {
  napi_value v;
  bool has = false;
  napi_has_named_property(env, obj, name, &has);
  if (!has) return dflt;
  napi_get_named_property(env, obj, name, &v);
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return dflt;
  return d;
}

/*
 * As root, the file system is mounted here with mount(2) and libfuse gets the open /dev/fuse
 * descriptor as "/dev/fd/N" (libfuse >= 3.3). libfuse's own mount, as root, afterwards runs
 * `/bin/mount --no-canonicalize -i -f` to record the mount in mtab, and fails the whole mount
 * when that program does not understand it: klibc's mount in an initramfs without busybox
 * (Debian 13's initramfs-tools). `fsopts` is libfuse's option syntax, of which gitroot uses
 * ro, suid/nosuid, dev/nodev, exec/noexec, default_permissions, allow_other, fsname=, subtype=.
 * Returns the descriptor, or -1 with `err` set.
 */
static int mount_self(const char *mnt, const char *fsopts, char *err, size_t errlen) {
  unsigned long flags = MS_NOSUID | MS_NODEV; /* libfuse's defaults for root */
  char source[256] = "gitroot", type[256] = "fuse", kopts[1024] = "";
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", fsopts);
  for (char *save = NULL, *o = strtok_r(buf, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
    if (!strcmp(o, "ro")) flags |= MS_RDONLY;
    else if (!strcmp(o, "rw")) flags &= ~MS_RDONLY;
    else if (!strcmp(o, "suid")) flags &= ~MS_NOSUID;
    else if (!strcmp(o, "nosuid")) flags |= MS_NOSUID;
    else if (!strcmp(o, "dev")) flags &= ~MS_NODEV;
    else if (!strcmp(o, "nodev")) flags |= MS_NODEV;
    else if (!strcmp(o, "exec")) flags &= ~MS_NOEXEC;
    else if (!strcmp(o, "noexec")) flags |= MS_NOEXEC;
    else if (!strncmp(o, "fsname=", 7)) snprintf(source, sizeof source, "%s", o + 7);
    else if (!strncmp(o, "subtype=", 8)) snprintf(type, sizeof type, "fuse.%s", o + 8);
    else if (!strcmp(o, "default_permissions") || !strcmp(o, "allow_other") || !strncmp(o, "max_read=", 9)) {
      size_t used = strlen(kopts);
      snprintf(kopts + used, sizeof kopts - used, ",%s", o);
    } else {
      snprintf(err, errlen, "unknown mount option '%s'", o);
      return -1;
    }
  }
  struct stat st;
  if (stat(mnt, &st) != 0) { snprintf(err, errlen, "mountpoint %s: %s", mnt, strerror(errno)); return -1; }
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) { snprintf(err, errlen, "cannot open /dev/fuse: %s (modprobe fuse?)", strerror(errno)); return -1; }
  char data[1200];
  snprintf(data, sizeof data, "fd=%d,rootmode=%o,user_id=%u,group_id=%u%s", fd, st.st_mode & S_IFMT, getuid(), getgid(), kopts);
  if (mount(source, mnt, type, flags, data) != 0) {
    snprintf(err, errlen, "mount(2) of %s at %s: %s", type, mnt, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

/*
 * Detaches a mount made by mount_self, unless the connection is gone already (unmounted from
 * outside: the descriptor polls POLLERR, as libfuse checks too), so that another file system
 * mounted at the same path since is never taken down.
 */
static void unmount_self(gitfs_t *g) {
  if (!g->own_mount) return;
  struct pollfd pfd = {.fd = fuse_session_fd(g->se), .events = 0};
  if (!(poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR))) umount2(g->own_mount, MNT_DETACH);
  free(g->own_mount);
  g->own_mount = NULL;
}

/* mount(mountpoint, options, rootEntry, handler, onExit) -> handle
 * options: { fsOptions: string, cacheBytes, maxSpillFds, time, threads } */
napi_value gitfs_mount(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 5) return throw_msg(env, "EINVAL", "mount(mountpoint, options, rootEntry, handler, onExit)");
  char mountpoint[4096], fsopts[4096];
  size_t l;
  if (napi_get_value_string_utf8(env, argv[0], mountpoint, sizeof mountpoint, &l) != napi_ok)
    return throw_msg(env, "EINVAL", "mountpoint must be a string");
  napi_value jopts;
  napi_get_named_property(env, argv[1], "fsOptions", &jopts);
  if (napi_get_value_string_utf8(env, jopts, fsopts, sizeof fsopts, &l) != napi_ok)
    return throw_msg(env, "EINVAL", "options.fsOptions must be a string");
  void *rootbuf;
  size_t rootlen;
  if (napi_get_buffer_info(env, argv[2], &rootbuf, &rootlen) != napi_ok)
    return throw_msg(env, "EINVAL", "rootEntry must be a Buffer");

  gitfs_t *g = calloc(1, sizeof *g);
  pthread_mutex_init(&g->lock, NULL);
  g->cache_limit = (uint64_t)get_num_prop(env, argv[1], "cacheBytes", 8.0 * 1024 * 1024);
  g->ring_size = g->cache_limit;
  g->ring = malloc(g->ring_size);
  g->fd_limit = (uint32_t)get_num_prop(env, argv[1], "maxSpillFds", 32);
  g->time = get_num_prop(env, argv[1], "time", 0);
  g->max_threads = (unsigned)get_num_prop(env, argv[1], "threads", 8);

  reader_t r = {rootbuf, (const uint8_t *)rootbuf + rootlen, 0};
  char *rootname = NULL;
  uint64_t rootino = install_entry(g, &r, 0, &rootname);
  free(rootname);
  if (rootino != FUSE_ROOT_ID) { free(g); return throw_msg(env, "EINVAL", "rootEntry must describe inode 1"); }

  napi_value name;
  napi_create_string_utf8(env, "gitroot-fuse", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[3], NULL, name, 0, 1, NULL, NULL, g, call_js, &g->tsfn) != napi_ok ||
      napi_create_threadsafe_function(env, argv[4], NULL, name, 0, 1, NULL, NULL, g, call_exit, &g->exit_tsfn) != napi_ok)
    return throw_msg(env, "EINVAL", "cannot create threadsafe functions");

  char *fargv[] = {"gitroot", "-o", fsopts, NULL};
  struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
  last_log[0] = 0;
  fuse_set_log_func(capture_log);
  g->se = fuse_session_new(&args, &gitfs_ops, sizeof gitfs_ops, g);
  if (!g->se) {
    napi_release_threadsafe_function(g->tsfn, napi_tsfn_abort);
    napi_release_threadsafe_function(g->exit_tsfn, napi_tsfn_abort);
    return throw_msg(env, "EMOUNT", last_log[0] ? last_log : "cannot create the FUSE session (bad options?)");
  }
  char where[64], err[512] = "";
  const char *target = mountpoint;
  if (geteuid() == 0) {
    int fd = mount_self(mountpoint, fsopts, err, sizeof err);
    if (fd < 0) {
      fuse_session_destroy(g->se);
      napi_release_threadsafe_function(g->tsfn, napi_tsfn_abort);
      napi_release_threadsafe_function(g->exit_tsfn, napi_tsfn_abort);
      return throw_msg(env, "EMOUNT", err);
    }
    g->own_mount = strdup(mountpoint);
    snprintf(where, sizeof where, "/dev/fd/%d", fd);
    target = where;
  }
  if (fuse_session_mount(g->se, target) != 0) {
    if (g->own_mount) umount2(g->own_mount, MNT_DETACH);
    free(g->own_mount);
    fuse_session_destroy(g->se);
    napi_release_threadsafe_function(g->tsfn, napi_tsfn_abort);
    napi_release_threadsafe_function(g->exit_tsfn, napi_tsfn_abort);
    return throw_msg(env, "EMOUNT", last_log[0] ? last_log : "mount failed (is /dev/fuse available and are you root?)");
  }
  if (pthread_create(&g->loop_thread, NULL, loop_main, g) != 0) {
    unmount_self(g);
    fuse_session_unmount(g->se);
    fuse_session_destroy(g->se);
    return throw_msg(env, "EMOUNT", "cannot start the FUSE loop thread");
  }
  g->loop_started = 1;
  napi_value handle;
  napi_create_external(env, g, NULL, NULL, &handle);
  return handle;
}

/* complete(handle, id, kind, ino, errno, payload?: Buffer | fd number, size?) */
napi_value gitfs_complete(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  gitfs_t *g = argc >= 5 ? get_handle(env, argv[0]) : NULL;
  if (!g) return throw_msg(env, "EINVAL", "complete(handle, id, kind, ino, errno, payload?, size?)");
  double did, dino;
  int32_t kind, err;
  napi_get_value_double(env, argv[1], &did);
  napi_get_value_int32(env, argv[2], &kind);
  napi_get_value_double(env, argv[3], &dino);
  napi_get_value_int32(env, argv[4], &err);
  uint64_t id = (uint64_t)did, ino = (uint64_t)dino;

  napi_valuetype t = napi_undefined;
  if (argc >= 6) napi_typeof(env, argv[5], &t);
  if (!err && kind == KIND_LOADDIR && t == napi_object) {
    void *buf; size_t len;
    if (napi_get_buffer_info(env, argv[5], &buf, &len) != napi_ok) return throw_msg(env, "EINVAL", "payload must be a Buffer");
    pthread_mutex_lock(&g->lock);
    err = install_dir(g, ino, buf, len);
    pthread_mutex_unlock(&g->lock);
  } else if (!err && kind == KIND_CONTENT && t == napi_object) {
    void *buf; size_t len;
    if (napi_get_buffer_info(env, argv[5], &buf, &len) != napi_ok) return throw_msg(env, "EINVAL", "payload must be a Buffer");
    pthread_mutex_lock(&g->lock);
    err = install_content(g, ino, buf, -1, len, id == 0);
    pthread_mutex_unlock(&g->lock);
  } else if (!err && kind == KIND_CONTENT && t == napi_number) {
    int32_t fd; double size = 0;
    napi_get_value_int32(env, argv[5], &fd);
    if (argc >= 7) napi_get_value_double(env, argv[6], &size);
    pthread_mutex_lock(&g->lock);
    install_content(g, ino, NULL, fd, (uint64_t)size, id == 0);
    pthread_mutex_unlock(&g->lock);
  }

  bool found = false;
  pthread_mutex_lock(&g->lock);
  for (call_t *c = g->calls; c; c = c->next)
    if (id && c->id == id) { c->done = 1; c->err = err; pthread_cond_signal(&c->cond); found = true; break; }
  pthread_mutex_unlock(&g->lock);
  napi_value res;
  napi_get_boolean(env, found, &res);
  return res;
}

/* unmount(handle): stops the loop, unmounts (if still mounted), joins the loop thread. */
napi_value gitfs_unmount(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  gitfs_t *g = argc >= 1 ? get_handle(env, argv[0]) : NULL;
  if (!g) return throw_msg(env, "EINVAL", "unmount(handle)");
  if (g->joined) return NULL;
  close_calls(g);
  fuse_session_exit(g->se);
  /* A mount of our own: libfuse only knows /dev/fd/N, so the mountpoint is detached here. */
  unmount_self(g);
  fuse_session_unmount(g->se); /* the blocked read() on /dev/fuse returns ENODEV */
  if (g->loop_started) pthread_join(g->loop_thread, NULL);
  /* A swap's invalidations fail fast now that the kernel side is gone. */
  if (g->notifying) { pthread_join(g->notify_thread, NULL); g->notifying = 0; }
  g->joined = 1;
  fuse_session_destroy(g->se);
  napi_release_threadsafe_function(g->tsfn, napi_tsfn_release);
  napi_release_threadsafe_function(g->exit_tsfn, napi_tsfn_release);
  return NULL;
}

/* cached(handle, ino) -> whether the file's content is in the native cache now. */
napi_value gitfs_cached(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  gitfs_t *g = argc >= 2 ? get_handle(env, argv[0]) : NULL;
  if (!g) return throw_msg(env, "EINVAL", "cached(handle, ino)");
  double dino;
  napi_get_value_double(env, argv[1], &dino);
  pthread_mutex_lock(&g->lock);
  inode_t *in = get_inode(g, (uint64_t)dino);
  bool hit = in && in->content;
  pthread_mutex_unlock(&g->lock);
  napi_value res;
  napi_get_boolean(env, hit, &res);
  return res;
}

napi_value gitfs_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  gitfs_t *g = argc >= 1 ? get_handle(env, argv[0]) : NULL;
  if (!g) return throw_msg(env, "EINVAL", "stats(handle)");
  napi_value o, v;
  napi_create_object(env, &o);
  pthread_mutex_lock(&g->lock);
  double vals[] = {(double)g->count, (double)g->cache_bytes, (double)g->cache_fds, (double)g->n_js_calls,
                   (double)g->n_lookups, (double)g->n_reads, (double)g->n_read_bytes, (double)g->n_evictions, (double)g->n_opens,
                   (double)g->n_swaps, (double)g->n_freed_total, (double)g->n_inval_entries, (double)g->n_inval_inodes};
  pthread_mutex_unlock(&g->lock);
  const char *names[] = {"inodes", "cacheBytes", "spillFds", "jsCalls", "lookups", "reads", "readBytes", "evictions", "opens",
                         "swaps", "freed", "invalEntries", "invalInodes"};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    napi_create_double(env, vals[i], &v);
    napi_set_named_property(env, o, names[i], v);
  }
  return o;
}

/* ---------- switching revisions ---------- */

/* children(handle, ino) -> null when `ino` is unknown or its children are not loaded, else a
 * Buffer: u32 count, then per child (sorted by name): u64 ino, u8 loaded (a directory whose
 * children are loaded), u16 namelen, name. */
napi_value gitfs_children(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], res;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  gitfs_t *g = argc >= 2 ? get_handle(env, argv[0]) : NULL;
  if (!g) return throw_msg(env, "EINVAL", "children(handle, ino)");
  double dino;
  napi_get_value_double(env, argv[1], &dino);
  pthread_mutex_lock(&g->lock);
  inode_t *d = get_inode(g, (uint64_t)dino);
  if (!d || !d->loaded) {
    pthread_mutex_unlock(&g->lock);
    napi_get_null(env, &res);
    return res;
  }
  size_t len = 4;
  for (uint32_t i = 0; i < d->nchildren; i++) len += 8 + 1 + 2 + strlen(d->children[i].name);
  uint8_t *p;
  if (napi_create_buffer(env, len, (void **)&p, &res) != napi_ok) {
    pthread_mutex_unlock(&g->lock);
    return throw_msg(env, "ENOMEM", "children: out of memory");
  }
  uint32_t n = d->nchildren;
  memcpy(p, &n, 4); p += 4;
  for (uint32_t i = 0; i < n; i++) {
    uint64_t ino = d->children[i].ino;
    inode_t *c = get_inode(g, ino);
    uint8_t loaded = c && c->loaded;
    uint16_t nl = (uint16_t)strlen(d->children[i].name);
    memcpy(p, &ino, 8); p += 8;
    *p++ = loaded;
    memcpy(p, &nl, 2); p += 2;
    memcpy(p, d->children[i].name, nl); p += nl;
  }
  pthread_mutex_unlock(&g->lock);
  return res;
}

/* drainFreed(handle) -> the inodes freed since the last call (numbers). */
napi_value gitfs_drain_freed(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], arr, v;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  gitfs_t *g = argc >= 1 ? get_handle(env, argv[0]) : NULL;
  if (!g) return throw_msg(env, "EINVAL", "drainFreed(handle)");
  pthread_mutex_lock(&g->lock);
  uint64_t n = g->nfreed;
  uint64_t *list = n ? malloc(n * sizeof *list) : NULL;
  if (list) memcpy(list, g->freed, n * sizeof *list); else n = 0;
  g->nfreed = 0;
  pthread_mutex_unlock(&g->lock);
  napi_create_array_with_length(env, n, &arr);
  for (uint64_t i = 0; i < n; i++) {
    napi_create_double(env, (double)list[i], &v);
    napi_set_element(env, arr, (uint32_t)i, v);
  }
  free(list);
  return arr;
}

/* One invalidation to send after a swap: an entry (parent, name) or an inode (ino, off). */
typedef struct note {
  uint64_t ino;
  char *name;        /* entry: the name in directory `ino`; NULL for an inode */
  off_t off;         /* inode: 0 = attributes and cached pages, -1 = attributes only */
} note_t;

typedef struct notes {
  note_t *v;
  size_t n, cap;
} notes_t;

static void note_add(notes_t *ns, uint64_t ino, const char *name, off_t off) {
  if (ns->n == ns->cap) {
    size_t ncap = ns->cap ? ns->cap * 2 : 64;
    note_t *nv = realloc(ns->v, ncap * sizeof *nv);
    if (!nv) return; /* the kernel keeps a stale cache entry: reported as fewer sent */
    ns->v = nv;
    ns->cap = ncap;
  }
  char *copy = name ? strdup(name) : NULL;
  if (name && !copy) return;
  ns->v[ns->n++] = (note_t){ino, copy, off};
}

typedef struct notify_job {
  gitfs_t *g;
  notes_t notes;
  napi_threadsafe_function done;
  uint64_t sent, gone, failed, entries, inodes;
  int skip;          /* no thread could be started: send nothing */
  double ms;
} notify_job_t;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* The notify thread: a thread of its own (not a FUSE worker, no lock held), so that an
 * invalidation waiting for the kernel's directory lock never waits for itself. */
static void *notify_main(void *arg) {
  notify_job_t *job = arg;
  gitfs_t *g = job->g;
  double t0 = now_ms();
  for (size_t i = 0; i < job->notes.n; i++) {
    note_t *nt = &job->notes.v[i];
    if (job->skip) { job->failed++; continue; }
    if (nt->name) job->entries++; else job->inodes++;
    int r = nt->name ? fuse_lowlevel_notify_inval_entry(g->se, nt->ino, nt->name, strlen(nt->name))
                     : fuse_lowlevel_notify_inval_inode(g->se, nt->ino, nt->off, 0);
    /* -ENOENT: the kernel had nothing cached for it (already forgotten). */
    if (r == 0) job->sent++; else if (r == -ENOENT) job->gone++; else job->failed++;
  }
  job->ms = now_ms() - t0;
  pthread_mutex_lock(&g->lock);
  g->n_inval_entries += job->entries;
  g->n_inval_inodes += job->inodes;
  pthread_mutex_unlock(&g->lock);
  /* call_done frees the job on the JS thread, maybe before the call below returns: keep the
   * callback's handle in a local for the release. */
  napi_threadsafe_function done = job->done;
  napi_call_threadsafe_function(done, job, napi_tsfn_blocking);
  napi_release_threadsafe_function(done, napi_tsfn_release);
  return NULL;
}

static void call_done(napi_env env, napi_value js_cb, void *context, void *data) {
  notify_job_t *job = data;
  if (env) {
    napi_value o, v, undef;
    napi_create_object(env, &o);
    napi_create_double(env, (double)job->notes.n, &v); napi_set_named_property(env, o, "notes", v);
    napi_create_double(env, (double)job->sent, &v); napi_set_named_property(env, o, "sent", v);
    napi_create_double(env, (double)job->gone, &v); napi_set_named_property(env, o, "gone", v);
    napi_create_double(env, (double)job->failed, &v); napi_set_named_property(env, o, "failed", v);
    napi_create_double(env, job->ms, &v); napi_set_named_property(env, o, "ms", v);
    napi_get_undefined(env, &undef);
    napi_call_function(env, undef, js_cb, 1, &o, NULL);
  }
  for (size_t i = 0; i < job->notes.n; i++) free(job->notes.v[i].name);
  free(job->notes.v);
  free(job);
}

/* Replaces the children of `dir` with `kids` (sorted; their nparents already counted); notes
 * the names that changed for invalidation, and queues the old children for freeing. */
static void replace_children(gitfs_t *g, uint64_t dir, child_t *kids, uint32_t n, notes_t *notes,
                             uint64_t **cand, size_t *ncand, size_t *candcap) {
  inode_t *d = get_inode(g, dir);
  int known = kernel_knows(d, dir);
  uint32_t i = 0, j = 0;
  while (i < d->nchildren || j < n) {
    int cmp = i >= d->nchildren ? 1 : j >= n ? -1 : strcmp(d->children[i].name, kids[j].name);
    if (cmp == 0) {
      if (d->children[i].ino != kids[j].ino && known) note_add(notes, dir, kids[j].name, 0);
      i++; j++;
    } else if (cmp < 0) {
      if (known) note_add(notes, dir, d->children[i].name, 0);
      i++;
    } else {
      if (known) note_add(notes, dir, kids[j].name, 0); /* a cached negative entry */
      j++;
    }
  }
  for (i = 0; i < d->nchildren; i++) {
    inode_t *c = get_inode(g, d->children[i].ino);
    if (c && c->nparents) c->nparents--;
    if (*ncand == *candcap) {
      size_t ncap = *candcap ? *candcap * 2 : 256;
      uint64_t *nc = realloc(*cand, ncap * sizeof *nc);
      if (nc) { *cand = nc; *candcap = ncap; }
    }
    if (*ncand < *candcap) (*cand)[(*ncand)++] = d->children[i].ino;
    free(d->children[i].name);
  }
  free(d->children);
  d->children = kids;
  d->nchildren = n;
  d->loaded = 1;
  d->time = g->time;
  if (known) note_add(notes, dir, NULL, 0); /* its attributes and cached listing */
}

/* Updates an inode's attributes from a packed entry (the inode must exist). */
static int set_attrs(gitfs_t *g, reader_t *r, notes_t *notes) {
  uint64_t ino = rd(r, 8);
  uint32_t mode = (uint32_t)rd(r, 4), uid = (uint32_t)rd(r, 4), gid = (uint32_t)rd(r, 4),
           nlink = (uint32_t)rd(r, 4);
  uint64_t size = rd(r, 8), rdev = rd(r, 8);
  free(rd_str(r, rd(r, 2))); /* its name: not needed */
  uint64_t linklen = rd(r, 4);
  char *link = linklen ? rd_str(r, linklen) : NULL;
  uint32_t nx = (uint32_t)rd(r, 2);
  xattr_t *xs = nx ? calloc(nx, sizeof *xs) : NULL;
  for (uint32_t i = 0; i < nx && !r->bad; i++) {
    xs[i].name = rd_str(r, rd(r, 2));
    xs[i].len = (uint32_t)rd(r, 4);
    xs[i].value = rd_str(r, xs[i].len);
  }
  inode_t *in = r->bad ? NULL : get_inode(g, ino);
  if (!in || (in->mode & S_IFMT) != (mode & S_IFMT)) {
    free(link);
    for (uint32_t i = 0; i < nx; i++) { free(xs[i].name); free(xs[i].value); }
    free(xs);
    return EIO;
  }
  for (uint32_t i = 0; i < in->nxattrs; i++) { free(in->xattrs[i].name); free(in->xattrs[i].value); }
  free(in->xattrs);
  free(in->link);
  in->mode = mode; in->uid = uid; in->gid = gid; in->nlink = nlink;
  in->size = size; in->rdev = rdev; in->link = link;
  in->xattrs = xs; in->nxattrs = nx;
  in->time = g->time;
  if (kernel_knows(in, ino)) note_add(notes, ino, NULL, -1);
  return 0;
}

/*
 * swap(handle, batch, time, onDone) -> { ops, notes }: applies a revision switch in one step
 * under the lock, then sends the kernel invalidations from a thread of its own and calls
 * onDone({notes, sent, gone, failed, ms}) when they are out. `time` becomes the timestamp of
 * what the batch creates or changes. Batch (little endian): u32 count, then ops:
 *   u8 SWAP_ATTR, entry                   new attributes of an existing inode (same type)
 *   u8 SWAP_CHILDREN, u64 dir, u32 n, n entries
 *                                         the directory's new children: an entry naming an
 *                                         existing inode keeps it (its attributes are not
 *                                         read), others are created
 * The batch is checked whole before anything changes: a malformed one changes nothing.
 */
napi_value gitfs_swap(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  gitfs_t *g = argc >= 4 ? get_handle(env, argv[0]) : NULL;
  if (!g) return throw_msg(env, "EINVAL", "swap(handle, batch, time, onDone)");
  void *buf;
  size_t len;
  if (napi_get_buffer_info(env, argv[1], &buf, &len) != napi_ok) return throw_msg(env, "EINVAL", "swap: batch must be a Buffer");
  double time;
  napi_get_value_double(env, argv[2], &time);
  if (g->joined || g->closing) return throw_msg(env, "EIO", "swap: the filesystem is unmounted");
  if (g->notifying) {
    /* The previous swap's thread: joined here only once it is done (JS waits for onDone). */
    pthread_join(g->notify_thread, NULL);
    g->notifying = 0;
  }

  notify_job_t *job = calloc(1, sizeof *job);
  if (!job) return throw_msg(env, "ENOMEM", "swap: out of memory");
  job->g = g;
  napi_value name;
  napi_create_string_utf8(env, "gitroot-swap", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[3], NULL, name, 0, 1, NULL, NULL, NULL, call_done, &job->done) != napi_ok) {
    free(job);
    return throw_msg(env, "EINVAL", "swap: cannot create the completion callback");
  }

  /* Pass 1, under the lock: check the whole batch (its structure, and that every directory
   * and inode it names exists with the right type). Nothing is installed yet. */
  pthread_mutex_lock(&g->lock);
  reader_t chk = {buf, (const uint8_t *)buf + len, 0};
  uint32_t nops = (uint32_t)rd(&chk, 4);
  for (uint32_t k = 0; k < nops && !chk.bad; k++) {
    int op = (int)rd(&chk, 1);
    uint32_t nent = 1;
    if (op == SWAP_CHILDREN) {
      inode_t *d = get_inode(g, rd(&chk, 8));
      if (!d || !S_ISDIR(d->mode)) chk.bad = 1;
      nent = (uint32_t)rd(&chk, 4);
    } else if (op != SWAP_ATTR) {
      chk.bad = 1;
    }
    for (uint32_t e = 0; e < nent && !chk.bad; e++) {
      uint64_t ino = rd(&chk, 8);
      uint32_t mode = (uint32_t)rd(&chk, 4);
      rd_skip(&chk, 3 * 4 + 8 + 8);
      rd_skip(&chk, rd(&chk, 2));
      rd_skip(&chk, rd(&chk, 4));
      uint32_t nx = (uint32_t)rd(&chk, 2);
      for (uint32_t x = 0; x < nx && !chk.bad; x++) {
        rd_skip(&chk, rd(&chk, 2));
        rd_skip(&chk, rd(&chk, 4));
      }
      if (ino == 0 || (ino == FUSE_ROOT_ID && op == SWAP_CHILDREN)) chk.bad = 1;
      if (op == SWAP_ATTR) {
        inode_t *in = chk.bad ? NULL : get_inode(g, ino);
        if (!in || (in->mode & S_IFMT) != (mode & S_IFMT)) chk.bad = 1;
      }
    }
  }
  if (chk.bad || chk.p != chk.end) {
    pthread_mutex_unlock(&g->lock);
    napi_release_threadsafe_function(job->done, napi_tsfn_abort);
    free(job);
    return throw_msg(env, "EINVAL", "swap: malformed batch (nothing was changed)");
  }

  /* Pass 2, still under the lock: apply. A request sees the old tree or the new one. */
  uint64_t *cand = NULL;
  size_t ncand = 0, candcap = 0;
  reader_t r = {buf, (const uint8_t *)buf + len, 0};
  g->time = time;
  rd(&r, 4);
  for (uint32_t k = 0; k < nops; k++) {
    int op = (int)rd(&r, 1);
    if (op == SWAP_ATTR) {
      set_attrs(g, &r, &job->notes);
      continue;
    }
    uint64_t dir = rd(&r, 8);
    uint32_t n = (uint32_t)rd(&r, 4);
    child_t *kids = n ? calloc(n, sizeof *kids) : NULL;
    uint32_t filled = 0;
    for (uint32_t i = 0; i < n; i++) {
      uint64_t ino = install_entry(g, &r, dir, &kids[filled].name);
      if (ino) kids[filled++].ino = ino; /* 0 only when out of memory: the entry is left out */
    }
    qsort(kids, filled, sizeof *kids, child_cmp);
    for (uint32_t i = 0; i < filled; i++) get_inode(g, kids[i].ino)->nparents++;
    replace_children(g, dir, kids, filled, &job->notes, &cand, &ncand, &candcap);
  }
  /* Old children nobody lists or holds any more go now (with their content). */
  for (size_t i = 0; i < ncand; i++) maybe_free(g, cand[i]);
  g->n_swaps++;
  pthread_mutex_unlock(&g->lock);
  free(cand);

  napi_value res, v;
  napi_create_object(env, &res);
  napi_create_double(env, (double)job->notes.n, &v);
  napi_set_named_property(env, res, "notes", v);
  if (pthread_create(&g->notify_thread, NULL, notify_main, job) != 0) {
    /* No thread: never notify from here (the JS thread may be what a request in the kernel
     * waits for). The new tree is served; the kernel's cached entries of what changed stay
     * until the next switch or unmount, and onDone says none was sent. */
    job->skip = 1;
    notify_main(job);
  } else {
    g->notifying = 1;
  }
  return res;
}
