"""Each invariant checker of the soak fires on recorded answers that violate it, and stays
quiet on answers that do not: a checker that cannot fire would report zero violations
whatever happened. `python3 -m unittest bench/test_soak_invariants.py`."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import soak_invariants as inv  # noqa: E402


def event(**fields):
    base = {"t": 10.0, "end": 10.1, "kind": "me", "method": "GET", "path": "/me",
            "status": 200, "retry_after": False, "error": None, "expect": "any"}
    base.update(fields)
    return base


DB_CUT = {"name": "db-cut", "start": 100.0, "end": 115.0}
KILL = {"name": "kill-authz", "start": 200.0, "end": 210.0}


class GoodTokens(unittest.TestCase):
    def test_a_401_for_a_good_token_fires_even_in_a_fault_window(self):
        for t in (10.0, 105.0):
            found = inv.check_good_tokens([event(t=t, end=t, expect="valid", status=401,
                                                 refused=True, error="invalid_token")])
            self.assertEqual([v["invariant"] for v in found], [1])

    def test_the_new_keys_tokens_may_be_refused_only_in_the_emergency_window(self):
        rotation = {"name": "rotate-now", "start": 300.0, "end": 300.2, "kid": "new"}
        refused = dict(expect="valid", status=401, refused=True, error="invalid_token")
        self.assertEqual(inv.check_good_tokens(
            [event(t=320.0, end=320.0, kid="new", **refused)], [rotation]), [])
        self.assertEqual(len(inv.check_good_tokens(
            [event(t=320.0, end=320.0, kid="old", **refused),
             event(t=350.0, end=350.0, kid="new", **refused),
             event(t=299.0, end=299.0, kid="new", **refused)], [rotation])), 3)

    def test_inactive_at_introspection_fires(self):
        found = inv.check_good_tokens([event(expect="valid", refused=True)])
        self.assertEqual(len(found), 1)

    def test_a_503_needs_retry_after(self):
        self.assertEqual(len(inv.check_good_tokens(
            [event(expect="valid", status=503, retry_after=False)])), 1)
        self.assertEqual(inv.check_good_tokens(
            [event(expect="valid", status=503, retry_after=True),
             event(expect="valid", status=200, accepted=True)]), [])


class RevokedTokens(unittest.TestCase):
    def test_accepted_past_the_bound_fires(self):
        late = event(t=13.0, expect="revoked", revoked_at=10.0, accepted=True)
        self.assertEqual([v["invariant"] for v in inv.check_revoked_tokens([late], [])], [2])

    def test_within_the_bound_or_refused_is_fine(self):
        early = event(t=11.5, expect="revoked", revoked_at=10.0, accepted=True)
        refused = event(t=30.0, expect="revoked", revoked_at=10.0, accepted=False,
                        refused=True, status=401)
        self.assertEqual(inv.check_revoked_tokens([early, refused], []), [])

    def test_a_fault_stretches_the_bound_to_the_staleness_bound_only(self):
        during = event(t=120.0, expect="revoked", revoked_at=99.0, accepted=True)
        self.assertEqual(inv.check_revoked_tokens([during], [DB_CUT]), [])
        past = event(t=170.0, expect="revoked", revoked_at=99.0, accepted=True)
        self.assertEqual(len(inv.check_revoked_tokens([past], [DB_CUT])), 1)


class RefreshChains(unittest.TestCase):
    def test_a_false_reuse_fires(self):
        found = inv.check_refresh_chains(
            [event(kind="refresh", expect="fresh-refresh", status=400, error="invalid_grant")])
        self.assertEqual([v["invariant"] for v in found], [3])

    def test_a_reuse_accepted_or_a_family_surviving_it_fires(self):
        found = inv.check_refresh_chains([
            event(kind="refresh", expect="reuse", status=200),
            event(kind="refresh", expect="after-reuse", status=200),
        ])
        self.assertEqual(len(found), 2)

    def test_the_right_answers_are_quiet(self):
        self.assertEqual(inv.check_refresh_chains([
            event(kind="refresh", expect="fresh-refresh", status=200),
            event(kind="refresh", expect="fresh-refresh", status=503, retry_after=True),
            event(kind="refresh", expect="reuse", status=400, error="invalid_grant"),
            event(kind="refresh", expect="after-reuse", status=400, error="invalid_grant"),
        ]), [])


class ServerErrors(unittest.TestCase):
    def test_a_500_fires_anywhere(self):
        for t in (10.0, 105.0, 205.0):
            self.assertEqual(len(inv.check_server_errors(
                [event(t=t, end=t, status=500)], [DB_CUT, KILL])), 1)

    def test_a_503_outside_a_fault_fires_and_inside_is_fine(self):
        self.assertEqual(len(inv.check_server_errors([event(status=503)], [DB_CUT])), 1)
        self.assertEqual(inv.check_server_errors(
            [event(t=105.0, end=105.2, status=503)], [DB_CUT]), [])

    def test_a_reset_or_502_only_inside_a_kill(self):
        self.assertEqual(len(inv.check_server_errors(
            [event(status=502), event(status=0)], [KILL])), 2)
        self.assertEqual(len(inv.check_server_errors(
            [event(t=105.0, end=105.0, status=502)], [DB_CUT])), 1)
        self.assertEqual(inv.check_server_errors(
            [event(t=205.0, end=205.0, status=502), event(t=201.0, end=201.0, status=0)],
            [KILL]), [])

    def test_a_graceful_stop_allows_no_reset(self):
        term = {"name": "term-resource", "start": 300.0, "end": 310.0}
        found = inv.check_server_errors(
            [event(t=305.0, end=305.0, status=502), event(t=306.0, end=306.0, status=0)],
            [term])
        self.assertEqual(len(found), 2)
        self.assertEqual(inv.check_server_errors(
            [event(t=305.0, end=305.0, status=503, retry_after=True)], [term]), [])

    def test_a_panic_in_a_log_fires(self):
        found = inv.check_logs({"authz-1": "ok\nthread 'actix-rt' panicked at src/x.rs:1:1:\n"})
        self.assertEqual([v["invariant"] for v in found], [4])
        self.assertEqual(inv.check_logs({"authz-1": "WARN database unavailable\n"}), [])


class Durability(unittest.TestCase):
    def test_a_missing_or_doubled_audit_event_fires(self):
        found = inv.check_audit(["a", "b", "c"], ["a", "b", "b"])
        self.assertEqual(sorted(v["message"] for v in found),
                         ["token b is in the audit log 2 times",
                          "token c is in the audit log 0 times"])
        self.assertEqual(inv.check_audit(["a"], ["a", "unrelated"]), [])

    def test_a_lost_or_stale_write_fires(self):
        found = inv.check_durable({"u1": "One", "u2": "Two"}, {"u1": "Old"})
        self.assertEqual(len(found), 2)
        self.assertEqual(inv.check_durable({"u1": "One"}, {"u1": "One", "x": None}), [])


class Resources(unittest.TestCase):
    def test_steady_growth_fires(self):
        growing = [(i, (100 + 10 * i) * 2**20) for i in range(40)]
        self.assertEqual([v["invariant"] for v in inv.check_memory({"authz-1": growing})], [6])

    def test_a_warm_plateau_is_fine(self):
        plateau = [(i, (50 if i < 5 else 120) * 2**20) for i in range(40)]
        self.assertEqual(inv.check_memory({"authz-1": plateau}), [])

    def test_busy_connections_after_the_run_fire(self):
        self.assertEqual(len(inv.check_connections(3)), 1)
        self.assertEqual(inv.check_connections(0), [])


if __name__ == "__main__":
    unittest.main()
