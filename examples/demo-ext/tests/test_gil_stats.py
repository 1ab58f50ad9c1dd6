"""gil_stats(): gilguard's GIL statistics as a dict, fed by the module's own releases."""

import threading

import gilguard_demo


def test_the_dict_has_totals_interpreters_and_sites():
    gilguard_demo.gil_stats_reset()
    threads = [threading.Thread(target=gilguard_demo.busy, args=(5,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = gilguard_demo.gil_stats()
    total = stats["total"]
    # Each busy() released the GIL once and restored it once.
    assert total["restore"] >= 4
    assert total["detaches"] >= 4
    assert total["waiting_now"] == 0
    assert total["wait"] >= 0.0
    main = [entry for entry in stats["interpreters"] if entry["id"] == 0]
    assert main and main[0]["restore"] >= 4
    # The restores' waits are counted at busy()'s `without_gil`; the holds that follow are
    # Python's to end, so they are not counted.
    busy = [site for site in stats["sites"] if "busy.rs" in site["site"]]
    assert busy and sum(site["attaches"] for site in busy) >= 4
    assert all(site["holds"] == 0 for site in busy)


def test_reset_sets_the_figures_to_zero():
    gilguard_demo.busy(1)
    gilguard_demo.gil_stats_reset()
    stats = gilguard_demo.gil_stats()
    assert stats["total"]["restore"] == 0
    assert stats["sites"] == []
