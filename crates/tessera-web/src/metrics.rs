//! A small metrics registry rendered in the Prometheus text exposition format 0.0.4.
//!
//! A [`Registry`] holds metric families in registration order. [`Registry::counter`],
//! [`Registry::gauge`] and [`Registry::histogram`] return cheap, clone-able handles that
//! update series in place; [`Registry::collect`] registers a family whose samples are read
//! by a closure each time [`Registry::render`] runs.
//!
//! A series is named by its label values, given in the order of the family's label names.
//! A wrong number of label values is a programming error: debug builds panic (through
//! `debug_assert!`), release builds pad the missing values with `""` or drop the extra
//! ones. The same goes for invalid metric or label names, which release builds register
//! as given.
//!
//! Updating an existing series takes a read lock and a few atomic operations and does not
//! allocate; only the first update of a new series takes the write lock.
//!
//! It is written here rather than taken from a crate because none writes what Tessera's
//! `/metrics` has always served: see "Hand-written infrastructure, and why" in
//! docs/ARCHITECTURE.md.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Default latency buckets in seconds: 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
/// 0.1, 0.25, 0.5, 1, 2.5, 5, 10.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The type of a family registered with [`Registry::collect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// A value that only goes up (rendered as `# TYPE name counter`).
    Counter,
    /// A value that goes up and down (rendered as `# TYPE name gauge`).
    Gauge,
}

/// A set of metric families rendered together in the Prometheus text exposition format
/// 0.0.4.
///
/// `Send + Sync`; share it as `Arc<Registry>`.
#[derive(Debug, Default)]
pub struct Registry {
    families: Mutex<Vec<Arc<Family>>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a counter family and returns its handle.
    ///
    /// `name` must match `[a-zA-Z_:][a-zA-Z0-9_:]*` and should end in `_total`; label names
    /// must match `[a-zA-Z_][a-zA-Z0-9_]*` and not start with `__`. An invalid or already
    /// registered name is a programming error reported by `debug_assert!`; release builds
    /// register the family anyway. A family without labels renders `name 0` until it is
    /// first incremented.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Counter {
        Counter(self.scalar(name, help, labels, Body::Counter))
    }

    /// Registers a gauge family and returns its handle.
    ///
    /// Names are checked as for [`Registry::counter`]. A family without labels renders
    /// `name 0` until it is first set.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Gauge {
        Gauge(self.scalar(name, help, labels, Body::Gauge))
    }

    /// Registers a family of one value per series (a counter or a gauge); a family without
    /// labels gets its one series at once, so it renders `name 0` before any update.
    fn scalar<S: Default>(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        body: fn(Arc<SeriesMap<S>>) -> Body,
    ) -> Arc<SeriesMap<S>> {
        let series = Arc::new(SeriesMap::new(name, labels));
        if labels.is_empty() {
            series.with(&[], S::default, |_| ());
        }
        self.register(name, help, labels, body(Arc::clone(&series)));
        series
    }

    /// Registers a histogram family with the given bucket upper bounds and returns its
    /// handle.
    ///
    /// `buckets` should be strictly increasing and must not contain NaN (checked by
    /// `debug_assert!`; release builds sort them, drop duplicates and NaN). The `+Inf`
    /// bucket is always added and may be left out of `buckets`. `le` is not allowed as a
    /// label name. A family without labels renders all-zero buckets, `_sum` and `_count`
    /// until its first observation. See [`LATENCY_BUCKETS`].
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        buckets: &'static [f64],
    ) -> Histogram {
        debug_assert!(
            buckets.windows(2).all(|w| w[0] < w[1]) && !buckets.iter().any(|b| b.is_nan()),
            "histogram {name}: buckets must be strictly increasing and not NaN: {buckets:?}"
        );
        debug_assert!(
            !labels.contains(&"le"),
            "histogram {name}: `le` is reserved and cannot be a label name"
        );
        let mut bounds: Vec<f64> = buckets
            .iter()
            .copied()
            .filter(|b| !b.is_nan() && *b != f64::INFINITY)
            .collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        let inner = Arc::new(HistogramInner {
            bounds: bounds.into_boxed_slice(),
            series: SeriesMap::new(name, labels),
        });
        if labels.is_empty() {
            inner.series.with(&[], || inner.new_series(), |_| ());
        }
        self.register(name, help, labels, Body::Histogram(Arc::clone(&inner)));
        Histogram(inner)
    }

    /// Registers a family whose samples are read at render time, e.g. a connection pool's
    /// size or counters kept elsewhere.
    ///
    /// `f` returns `(label values, value)` pairs, label values in the order of `labels`;
    /// it is called by every [`Registry::render`], outside of the registry's locks, so it
    /// may itself use the registry. A pair with the wrong number of label values is
    /// reported by `debug_assert!` and padded with `""` or truncated in release builds.
    /// Nothing is rendered for the family but its `# HELP` and `# TYPE` lines when `f`
    /// returns no pairs.
    pub fn collect(
        &self,
        name: &'static str,
        help: &'static str,
        kind: MetricKind,
        labels: &'static [&'static str],
        f: impl Fn() -> Vec<(Vec<String>, f64)> + Send + Sync + 'static,
    ) {
        self.register(
            name,
            help,
            labels,
            Body::Collect(kind, Collector(Box::new(f))),
        );
    }

    /// Renders every family in the text exposition format 0.0.4: families in registration
    /// order, each as `# HELP` and `# TYPE` lines and then its samples, series sorted by
    /// label values.
    ///
    /// Every line ends with a newline; a registry with no families renders `""`.
    pub fn render(&self) -> String {
        // Copy the list so collectors run without the registry's lock held.
        let families = lock(&self.families).clone();
        let mut out = String::new();
        for family in &families {
            family.render(&mut out);
        }
        out
    }

    fn register(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        body: Body,
    ) {
        debug_assert!(is_metric_name(name), "invalid metric name {name:?}");
        debug_assert!(
            labels.iter().all(|l| is_label_name(l)),
            "metric {name}: invalid label name in {labels:?}"
        );
        let mut families = lock(&self.families);
        debug_assert!(
            families.iter().all(|f| f.name != name),
            "metric {name} is registered twice"
        );
        families.push(Arc::new(Family {
            name,
            help,
            labels,
            body,
        }));
    }
}

/// A handle on a counter family: a `u64` per series that only goes up.
///
/// Cheap to clone; clones update the same family.
#[derive(Debug, Clone)]
pub struct Counter(Arc<SeriesMap<AtomicU64>>);

impl Counter {
    /// Adds 1 to the series with these label values.
    ///
    /// The label values are in the order of the family's label names; a wrong number of
    /// them panics in debug builds and is padded with `""` or truncated in release builds.
    pub fn inc(&self, values: &[&str]) {
        self.inc_by(values, 1);
    }

    /// Adds `n` to the series with these label values (see [`Counter::inc`]). The count
    /// wraps around at `u64::MAX`.
    pub fn inc_by(&self, values: &[&str], n: u64) {
        self.0.check_arity(values);
        self.0.with(values, AtomicU64::default, |c| {
            c.fetch_add(n, Ordering::Relaxed);
        });
    }

    /// The count of the series with these label values; 0 for a series never incremented.
    pub fn get(&self, values: &[&str]) -> u64 {
        self.0.check_arity(values);
        self.0
            .find(values, |c| c.load(Ordering::Relaxed))
            .unwrap_or(0)
    }
}

/// A handle on a gauge family: an `f64` per series that goes up and down.
///
/// Cheap to clone; clones update the same family.
#[derive(Debug, Clone)]
pub struct Gauge(Arc<SeriesMap<AtomicF64>>);

impl Gauge {
    /// Sets the series with these label values to `v`.
    ///
    /// Label values are handled as by [`Counter::inc`].
    pub fn set(&self, values: &[&str], v: f64) {
        self.0.check_arity(values);
        self.0.with(values, AtomicF64::default, |g| g.set(v));
    }

    /// Adds `v` (which may be negative) to the series with these label values.
    ///
    /// Label values are handled as by [`Counter::inc`].
    pub fn add(&self, values: &[&str], v: f64) {
        self.0.check_arity(values);
        self.0.with(values, AtomicF64::default, |g| g.add(v));
    }
}

/// A handle on a histogram family: per series, counts of observations in buckets, their
/// count and their sum.
///
/// Cheap to clone; clones update the same family.
#[derive(Debug, Clone)]
pub struct Histogram(Arc<HistogramInner>);

impl Histogram {
    /// Records the observation `v` in the series with these label values.
    ///
    /// `v` counts in every bucket whose upper bound is at least `v`; NaN counts only in
    /// `+Inf` and makes the sum NaN. Label values are handled as by [`Counter::inc`].
    pub fn observe(&self, values: &[&str], v: f64) {
        let inner = &*self.0;
        inner.series.check_arity(values);
        let bucket = if v.is_nan() {
            inner.bounds.len()
        } else {
            inner.bounds.partition_point(|b| *b < v)
        };
        inner
            .series
            .with(values, || inner.new_series(), |s| s.observe(bucket, v));
    }
}

#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    body: Body,
}

#[derive(Debug)]
enum Body {
    Counter(Arc<SeriesMap<AtomicU64>>),
    Gauge(Arc<SeriesMap<AtomicF64>>),
    Histogram(Arc<HistogramInner>),
    Collect(MetricKind, Collector),
}

type CollectFn = dyn Fn() -> Vec<(Vec<String>, f64)> + Send + Sync;

struct Collector(Box<CollectFn>);

impl fmt::Debug for Collector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Collector(..)")
    }
}

#[derive(Debug)]
struct HistogramInner {
    /// Finite (or `-Inf`) upper bounds, strictly increasing; `+Inf` is implied.
    bounds: Box<[f64]>,
    series: SeriesMap<HistogramSeries>,
}

impl HistogramInner {
    fn new_series(&self) -> HistogramSeries {
        HistogramSeries {
            buckets: (0..=self.bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicF64::default(),
        }
    }
}

#[derive(Debug)]
struct HistogramSeries {
    /// Observations per bucket, not cumulative; the last is the `+Inf` bucket. Their total
    /// is the count, so `_count` always equals the `+Inf` bucket.
    buckets: Box<[AtomicU64]>,
    sum: AtomicF64,
}

impl HistogramSeries {
    fn observe(&self, bucket: usize, v: f64) {
        if let Some(b) = self.buckets.get(bucket) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.sum.add(v);
    }
}

/// An `f64` kept as its bits in an [`AtomicU64`].
struct AtomicF64(AtomicU64);

impl Default for AtomicF64 {
    fn default() -> Self {
        AtomicF64(AtomicU64::new(0.0_f64.to_bits()))
    }
}

impl fmt::Debug for AtomicF64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

impl AtomicF64 {
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    fn add(&self, v: f64) {
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(current) + v).to_bits();
            match self
                .0
                .compare_exchange_weak(current, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }
}

/// Series by the hash of their label values; values that collide share a `Vec`.
type SeriesTable<S> = HashMap<u64, Vec<(Box<[String]>, S)>>;

/// A family's series, found by a hash of their label values. Series whose values collide
/// share a bucket and are told apart by comparing the values.
#[derive(Debug)]
struct SeriesMap<S> {
    name: &'static str,
    arity: usize,
    hasher: RandomState,
    map: RwLock<SeriesTable<S>>,
}

impl<S> SeriesMap<S> {
    fn new(name: &'static str, labels: &'static [&'static str]) -> Self {
        SeriesMap {
            name,
            arity: labels.len(),
            hasher: RandomState::new(),
            map: RwLock::new(HashMap::new()),
        }
    }

    fn check_arity(&self, values: &[&str]) {
        debug_assert_eq!(
            values.len(),
            self.arity,
            "metric {}: wrong number of label values {values:?}",
            self.name
        );
    }

    /// The label values padded with `""` or truncated to the family's label count.
    fn normalized<'a>(&self, values: &'a [&'a str]) -> impl Iterator<Item = &'a str> + Clone {
        values
            .iter()
            .copied()
            .chain(std::iter::repeat(""))
            .take(self.arity)
    }

    fn hash(&self, values: &[&str]) -> u64 {
        let mut h = self.hasher.build_hasher();
        for v in self.normalized(values) {
            h.write(v.as_bytes());
            h.write_u8(0xff);
        }
        h.finish()
    }

    fn matches(&self, stored: &[String], values: &[&str]) -> bool {
        stored
            .iter()
            .map(String::as_str)
            .eq(self.normalized(values))
    }

    /// Calls `f` on the series with these label values (normalized), if it exists.
    fn find<R>(&self, values: &[&str], f: impl FnOnce(&S) -> R) -> Option<R> {
        let hash = self.hash(values);
        let map = self.read();
        map.get(&hash)?
            .iter()
            .find(|(stored, _)| self.matches(stored, values))
            .map(|(_, s)| f(s))
    }

    /// Calls `f` on the series with these label values (normalized), first creating it
    /// with `make` if needed. No `debug_assert!` on the number of values.
    fn with<R>(&self, values: &[&str], make: impl FnOnce() -> S, f: impl FnOnce(&S) -> R) -> R {
        let hash = self.hash(values);
        {
            let map = self.read();
            if let Some((_, s)) = map
                .get(&hash)
                .and_then(|v| v.iter().find(|(stored, _)| self.matches(stored, values)))
            {
                return f(s);
            }
        }
        let mut map = self.write();
        let entries = map.entry(hash).or_default();
        let index = match entries
            .iter()
            .position(|(stored, _)| self.matches(stored, values))
        {
            Some(index) => index,
            None => {
                let key = self.normalized(values).map(str::to_owned).collect();
                entries.push((key, make()));
                entries.len() - 1
            }
        };
        f(&entries[index].1)
    }

    /// Calls `f` on every series, sorted by label values.
    fn for_each_sorted(&self, mut f: impl FnMut(&[String], &S)) {
        let map = self.read();
        let mut all: Vec<(&[String], &S)> = map
            .values()
            .flatten()
            .map(|(values, s)| (&**values, s))
            .collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        for (values, s) in all {
            f(values, s);
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, SeriesTable<S>> {
        match self.map.read() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn write(&self) -> RwLockWriteGuard<'_, SeriesTable<S>> {
        match self.map.write() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Registers `tessera_db_pool_connections{state="in_use"|"idle"}` and
/// `tessera_db_pool_max_connections`, read from `store` at every scrape. (The store has no
/// web crates, so its pool's series are registered here.)
pub fn register_pool_metrics(registry: &Registry, store: &Arc<dyn tessera_store::Store>) {
    let connections = Arc::clone(store);
    registry.collect(
        "tessera_db_pool_connections",
        "Database connections open in the pool, by state.",
        MetricKind::Gauge,
        &["state"],
        move || {
            let status = connections.pool_status();
            vec![
                (
                    vec!["in_use".to_owned()],
                    f64::from(status.open.saturating_sub(status.idle)),
                ),
                (vec!["idle".to_owned()], f64::from(status.idle)),
            ]
        },
    );
    let max = Arc::clone(store);
    registry.collect(
        "tessera_db_pool_max_connections",
        "The most database connections the pool opens.",
        MetricKind::Gauge,
        &[],
        move || vec![(Vec::new(), f64::from(max.pool_status().max))],
    );
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Family {
    fn render(&self, out: &mut String) {
        let kind = match &self.body {
            Body::Counter(_) | Body::Collect(MetricKind::Counter, _) => "counter",
            Body::Gauge(_) | Body::Collect(MetricKind::Gauge, _) => "gauge",
            Body::Histogram(_) => "histogram",
        };
        out.push_str("# HELP ");
        out.push_str(self.name);
        out.push(' ');
        escape_help(out, self.help);
        out.push_str("\n# TYPE ");
        out.push_str(self.name);
        out.push(' ');
        out.push_str(kind);
        out.push('\n');

        match &self.body {
            Body::Counter(series) => series.for_each_sorted(|values, c| {
                self.sample(out, "", values, None);
                let _ = writeln!(out, "{}", c.load(Ordering::Relaxed));
            }),
            Body::Gauge(series) => series.for_each_sorted(|values, g| {
                self.sample(out, "", values, None);
                write_float(out, g.get());
                out.push('\n');
            }),
            Body::Histogram(h) => h.series.for_each_sorted(|values, s| {
                let mut cumulative = 0_u64;
                for (i, bucket) in s.buckets.iter().enumerate() {
                    cumulative = cumulative.wrapping_add(bucket.load(Ordering::Relaxed));
                    let le = h.bounds.get(i).copied().unwrap_or(f64::INFINITY);
                    self.sample(out, "_bucket", values, Some(le));
                    let _ = writeln!(out, "{cumulative}");
                }
                self.sample(out, "_sum", values, None);
                write_float(out, s.sum.get());
                out.push('\n');
                self.sample(out, "_count", values, None);
                let _ = writeln!(out, "{cumulative}");
            }),
            Body::Collect(_, Collector(f)) => {
                let mut samples = f();
                for (values, _) in &mut samples {
                    debug_assert_eq!(
                        values.len(),
                        self.labels.len(),
                        "metric {}: wrong number of label values {values:?}",
                        self.name
                    );
                    values.resize(self.labels.len(), String::new());
                }
                samples.sort_by(|a, b| a.0.cmp(&b.0));
                for (values, v) in &samples {
                    self.sample(out, "", values, None);
                    write_float(out, *v);
                    out.push('\n');
                }
            }
        }
    }

    /// Writes `name{labels} ` (without the value).
    fn sample(&self, out: &mut String, suffix: &str, values: &[String], le: Option<f64>) {
        out.push_str(self.name);
        out.push_str(suffix);
        if !self.labels.is_empty() || le.is_some() {
            out.push('{');
            let mut first = true;
            for (label, value) in self.labels.iter().zip(values) {
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(label);
                out.push_str("=\"");
                escape_label_value(out, value);
                out.push('"');
            }
            if let Some(le) = le {
                if !first {
                    out.push(',');
                }
                out.push_str("le=\"");
                write_float(out, le);
                out.push('"');
            }
            out.push('}');
        }
        out.push(' ');
    }
}

/// Escapes `\` and newline, as `# HELP` text requires.
fn escape_help(out: &mut String, help: &str) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Escapes `\`, `"` and newline, as label values require.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Writes a sample value: `NaN`, `+Inf`, `-Inf`, integers without a decimal point, other
/// numbers in Rust's shortest round-trip form (in exponent notation when very large or
/// very small).
fn write_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else if v == 0.0 {
        out.push('0');
    } else if (1e-7..1e21).contains(&v.abs()) {
        let _ = write!(out, "{v}");
    } else {
        let _ = write!(out, "{v:e}");
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
#[path = "tests/metrics.rs"]
mod tests;
