use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::thread;

use super::*;

#[test]
fn handles_and_registry_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Registry>();
    send_sync::<Counter>();
    send_sync::<Gauge>();
    send_sync::<Histogram>();
}

#[test]
fn an_empty_registry_renders_nothing() {
    assert_eq!(Registry::new().render(), "");
}

#[test]
fn a_counter_incremented_from_several_threads_counts_every_increment() {
    let registry = Arc::new(Registry::new());
    let requests = registry.counter(
        "http_requests_total",
        "HTTP requests handled.",
        &["method", "status"],
    );
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let requests = requests.clone();
            thread::spawn(move || {
                for _ in 0..1000 {
                    requests.inc(&["GET", "200"]);
                    requests.inc(&["POST", "201"]);
                }
                requests.inc_by(&["GET", "404"], 5);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(requests.get(&["GET", "200"]), 4000);
    assert_eq!(requests.get(&["GET", "404"]), 20);
    assert_eq!(requests.get(&["DELETE", "204"]), 0);
    assert_eq!(
        registry.render(),
        "# HELP http_requests_total HTTP requests handled.\n\
         # TYPE http_requests_total counter\n\
         http_requests_total{method=\"GET\",status=\"200\"} 4000\n\
         http_requests_total{method=\"GET\",status=\"404\"} 20\n\
         http_requests_total{method=\"POST\",status=\"201\"} 4000\n"
    );
}

#[test]
fn get_does_not_create_a_series() {
    let registry = Registry::new();
    let c = registry.counter("c_total", "C.", &["a"]);
    assert_eq!(c.get(&["x"]), 0);
    assert_eq!(
        registry.render(),
        "# HELP c_total C.\n# TYPE c_total counter\n"
    );
}

#[test]
fn label_values_that_concatenate_alike_are_different_series() {
    let registry = Registry::new();
    let c = registry.counter("c_total", "C.", &["a", "b"]);
    c.inc(&["a", "bc"]);
    c.inc_by(&["ab", "c"], 2);
    c.inc_by(&["", "abc"], 3);
    assert_eq!(c.get(&["a", "bc"]), 1);
    assert_eq!(c.get(&["ab", "c"]), 2);
    assert_eq!(c.get(&["", "abc"]), 3);
    assert_eq!(
        registry.render(),
        "# HELP c_total C.\n\
         # TYPE c_total counter\n\
         c_total{a=\"\",b=\"abc\"} 3\n\
         c_total{a=\"a\",b=\"bc\"} 1\n\
         c_total{a=\"ab\",b=\"c\"} 2\n"
    );
}

#[test]
fn help_text_and_label_values_are_escaped() {
    let registry = Registry::new();
    let c = registry.counter(
        "escapes_total",
        "Back\\slash, \"quotes\" and\nnewline.",
        &["value"],
    );
    c.inc(&["a\\b \"c\"\nd"]);
    assert_eq!(
        registry.render(),
        "# HELP escapes_total Back\\\\slash, \"quotes\" and\\nnewline.\n\
         # TYPE escapes_total counter\n\
         escapes_total{value=\"a\\\\b \\\"c\\\"\\nd\"} 1\n"
    );
}

#[test]
fn a_histogram_renders_cumulative_buckets_sum_and_count() {
    let registry = Registry::new();
    let latency = registry.histogram(
        "request_seconds",
        "Request latency.",
        &["route"],
        &[0.25, 0.5, 1.0],
    );
    for v in [0.25, 0.5, 0.75, 2.0, 0.125] {
        latency.observe(&["/token"], v);
    }
    latency.observe(&["/authorize"], 1.0);
    assert_eq!(
        registry.render(),
        "# HELP request_seconds Request latency.\n\
         # TYPE request_seconds histogram\n\
         request_seconds_bucket{route=\"/authorize\",le=\"0.25\"} 0\n\
         request_seconds_bucket{route=\"/authorize\",le=\"0.5\"} 0\n\
         request_seconds_bucket{route=\"/authorize\",le=\"1\"} 1\n\
         request_seconds_bucket{route=\"/authorize\",le=\"+Inf\"} 1\n\
         request_seconds_sum{route=\"/authorize\"} 1\n\
         request_seconds_count{route=\"/authorize\"} 1\n\
         request_seconds_bucket{route=\"/token\",le=\"0.25\"} 2\n\
         request_seconds_bucket{route=\"/token\",le=\"0.5\"} 3\n\
         request_seconds_bucket{route=\"/token\",le=\"1\"} 4\n\
         request_seconds_bucket{route=\"/token\",le=\"+Inf\"} 5\n\
         request_seconds_sum{route=\"/token\"} 3.625\n\
         request_seconds_count{route=\"/token\"} 5\n"
    );
}

#[test]
fn a_histogram_observed_from_several_threads_keeps_count_and_sum() {
    let registry = Registry::new();
    let h = registry.histogram("h_seconds", "H.", &[], &[1.0]);
    thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..1000 {
                    h.observe(&[], 0.5);
                    h.observe(&[], 2.0);
                }
            });
        }
    });
    assert_eq!(
        registry.render(),
        "# HELP h_seconds H.\n\
         # TYPE h_seconds histogram\n\
         h_seconds_bucket{le=\"1\"} 4000\n\
         h_seconds_bucket{le=\"+Inf\"} 8000\n\
         h_seconds_sum 10000\n\
         h_seconds_count 8000\n"
    );
}

#[test]
fn a_labelless_histogram_renders_zeros_and_an_explicit_inf_bucket_is_not_repeated() {
    let registry = Registry::new();
    let h = registry.histogram("h_seconds", "H.", &[], &[0.005, 1.0, f64::INFINITY]);
    let expected_empty = "# HELP h_seconds H.\n\
         # TYPE h_seconds histogram\n\
         h_seconds_bucket{le=\"0.005\"} 0\n\
         h_seconds_bucket{le=\"1\"} 0\n\
         h_seconds_bucket{le=\"+Inf\"} 0\n\
         h_seconds_sum 0\n\
         h_seconds_count 0\n";
    assert_eq!(registry.render(), expected_empty);
    h.observe(&[], f64::NAN);
    assert_eq!(
        registry.render(),
        "# HELP h_seconds H.\n\
         # TYPE h_seconds histogram\n\
         h_seconds_bucket{le=\"0.005\"} 0\n\
         h_seconds_bucket{le=\"1\"} 0\n\
         h_seconds_bucket{le=\"+Inf\"} 1\n\
         h_seconds_sum NaN\n\
         h_seconds_count 1\n"
    );
}

#[test]
fn latency_buckets_render_as_documented() {
    let registry = Registry::new();
    registry.histogram("l_seconds", "L.", &[], LATENCY_BUCKETS);
    let les: Vec<String> = registry
        .render()
        .lines()
        .filter_map(|l| l.split_once("le=\"").map(|(_, rest)| rest.to_owned()))
        .map(|rest| rest.split('"').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        les,
        [
            "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
            "1", "2.5", "5", "10", "+Inf"
        ]
    );
}

#[test]
fn gauges_are_set_and_added_to() {
    let registry = Registry::new();
    let g = registry.gauge("sessions", "Open sessions.", &["kind"]);
    g.set(&["web"], 3.0);
    g.add(&["web"], -0.5);
    g.add(&["api"], 2.0);
    g.set(&["down"], f64::NEG_INFINITY);
    assert_eq!(
        registry.render(),
        "# HELP sessions Open sessions.\n\
         # TYPE sessions gauge\n\
         sessions{kind=\"api\"} 2\n\
         sessions{kind=\"down\"} -Inf\n\
         sessions{kind=\"web\"} 2.5\n"
    );
}

#[test]
fn a_collect_family_is_read_at_render_time() {
    let registry = Registry::new();
    let kept_elsewhere = Arc::new(AtomicU64::new(0));
    let source = Arc::clone(&kept_elsewhere);
    registry.collect(
        "pool_connections",
        "Database pool connections.",
        MetricKind::Gauge,
        &["state"],
        || {
            vec![
                (vec!["idle".to_owned()], 7.0),
                (vec!["busy".to_owned()], 3.0),
            ]
        },
    );
    registry.collect(
        "logins_total",
        "Logins.",
        MetricKind::Counter,
        &[],
        move || vec![(vec![], source.load(Ordering::Relaxed) as f64)],
    );
    registry.collect(
        "nothing",
        "Nothing yet.",
        MetricKind::Gauge,
        &["x"],
        Vec::new,
    );

    let render = |logins| {
        format!(
            "# HELP pool_connections Database pool connections.\n\
             # TYPE pool_connections gauge\n\
             pool_connections{{state=\"busy\"}} 3\n\
             pool_connections{{state=\"idle\"}} 7\n\
             # HELP logins_total Logins.\n\
             # TYPE logins_total counter\n\
             logins_total {logins}\n\
             # HELP nothing Nothing yet.\n\
             # TYPE nothing gauge\n"
        )
    };
    assert_eq!(registry.render(), render(0));
    kept_elsewhere.store(42, Ordering::Relaxed);
    assert_eq!(registry.render(), render(42));
}

#[test]
fn a_collector_may_use_the_registry() {
    let registry = Arc::new(Registry::new());
    let weak = Arc::downgrade(&registry);
    registry.collect("families", "Families.", MetricKind::Gauge, &[], move || {
        let n = weak
            .upgrade()
            .map_or(0, |r| r.families.lock().map_or(0, |f| f.len()));
        vec![(vec![], n as f64)]
    });
    assert_eq!(
        registry.render(),
        "# HELP families Families.\n# TYPE families gauge\nfamilies 1\n"
    );
}

#[test]
fn families_render_in_registration_order() {
    let registry = Registry::new();
    let z = registry.counter("z_total", "Z.", &[]);
    registry.gauge("a_gauge", "A.", &[]);
    registry.counter("m_total", "M.", &["x"]);
    registry.gauge("b_gauge", "B.", &["y"]);
    z.inc(&[]);
    assert_eq!(
        registry.render(),
        "# HELP z_total Z.\n\
         # TYPE z_total counter\n\
         z_total 1\n\
         # HELP a_gauge A.\n\
         # TYPE a_gauge gauge\n\
         a_gauge 0\n\
         # HELP m_total M.\n\
         # TYPE m_total counter\n\
         # HELP b_gauge B.\n\
         # TYPE b_gauge gauge\n"
    );
}

#[test]
fn floats_are_rendered_shortest_and_integers_without_a_point() {
    let cases = [
        (3.0, "3"),
        (-2.0, "-2"),
        (0.0, "0"),
        (-0.0, "0"),
        (0.1, "0.1"),
        (-2.5, "-2.5"),
        (1e20, "100000000000000000000"),
        (1e21, "1e21"),
        (1.5e-8, "1.5e-8"),
        (1e-7, "0.0000001"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
    ];
    for (v, expected) in cases {
        let mut out = String::new();
        write_float(&mut out, v);
        assert_eq!(out, expected, "{v:?}");
    }
}

#[test]
fn names_are_checked() {
    assert!(is_metric_name("tessera:http_requests_total"));
    assert!(is_metric_name("_x9"));
    assert!(!is_metric_name(""));
    assert!(!is_metric_name("9x"));
    assert!(!is_metric_name("a-b"));
    assert!(is_label_name("route_2"));
    assert!(!is_label_name("__name"));
    assert!(!is_label_name("a:b"));
    assert!(!is_label_name(""));
}

/// The padding path itself, without the `debug_assert!` the public methods add, so it is
/// tested in debug builds too.
#[test]
fn missing_label_values_are_padded_and_extra_ones_dropped() {
    let registry = Registry::new();
    let c = registry.counter("c_total", "C.", &["a", "b"]);
    let inc = |values: &[&str]| {
        c.0.with(values, AtomicU64::default, |n| {
            n.fetch_add(1, Ordering::Relaxed);
        })
    };
    inc(&["x"]);
    inc(&["x", ""]);
    inc(&["x", "y", "z"]);
    inc(&["x", "y"]);
    inc(&[]);
    assert_eq!(c.get(&["x", ""]), 2);
    assert_eq!(c.get(&["x", "y"]), 2);
    assert_eq!(
        registry.render(),
        "# HELP c_total C.\n\
         # TYPE c_total counter\n\
         c_total{a=\"\",b=\"\"} 1\n\
         c_total{a=\"x\",b=\"\"} 2\n\
         c_total{a=\"x\",b=\"y\"} 2\n"
    );
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "wrong number of label values")]
fn a_wrong_number_of_label_values_panics_in_debug_builds() {
    let registry = Registry::new();
    registry.counter("c_total", "C.", &["a", "b"]).inc(&["x"]);
}

#[cfg(not(debug_assertions))]
#[test]
fn a_wrong_number_of_label_values_is_padded_in_release_builds() {
    let registry = Registry::new();
    let c = registry.counter("c_total", "C.", &["a", "b"]);
    c.inc(&["x"]);
    c.inc(&["x", "", "extra"]);
    let g = registry.gauge("g", "G.", &[]);
    g.set(&["unexpected"], 1.5);
    let h = registry.histogram("h", "H.", &["a"], &[1.0]);
    h.observe(&[], 0.5);
    registry.collect("k", "K.", MetricKind::Gauge, &["a", "b"], || {
        vec![
            (vec!["1".to_owned(), "2".to_owned(), "3".to_owned()], 1.0),
            (vec![], 2.0),
        ]
    });
    assert_eq!(
        registry.render(),
        "# HELP c_total C.\n\
         # TYPE c_total counter\n\
         c_total{a=\"x\",b=\"\"} 2\n\
         # HELP g G.\n\
         # TYPE g gauge\n\
         g 1.5\n\
         # HELP h H.\n\
         # TYPE h histogram\n\
         h_bucket{a=\"\",le=\"1\"} 1\n\
         h_bucket{a=\"\",le=\"+Inf\"} 1\n\
         h_sum{a=\"\"} 0.5\n\
         h_count{a=\"\"} 1\n\
         # HELP k K.\n\
         # TYPE k gauge\n\
         k{a=\"\",b=\"\"} 2\n\
         k{a=\"1\",b=\"2\"} 1\n"
    );
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "invalid metric name")]
fn an_invalid_name_panics_in_debug_builds() {
    Registry::new().counter("http-requests", "Bad.", &[]);
}

#[cfg(not(debug_assertions))]
#[test]
fn an_invalid_name_is_registered_in_release_builds() {
    let registry = Registry::new();
    registry.counter("http-requests", "Bad.", &[]);
    assert_eq!(
        registry.render(),
        "# HELP http-requests Bad.\n# TYPE http-requests counter\nhttp-requests 0\n"
    );
}
