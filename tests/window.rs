//! The window formula, exhaustively for every input and output length up to 128.

use adaptive_pool::window;

const MAX_LEN: usize = 128;

/// The windows of every output cell cover the input: the first starts at 0, the last ends at
/// the input's end, none is empty, and there is no gap between neighbours.
#[test]
fn windows_cover_the_input() {
    for in_len in 1..=MAX_LEN {
        for out_len in 1..=MAX_LEN {
            assert_eq!(window::start(0, out_len, in_len), 0);
            assert_eq!(window::end(out_len - 1, out_len, in_len), in_len);
            for o in 0..out_len {
                let w = window::window(o, out_len, in_len);
                assert!(
                    !w.is_empty(),
                    "in {in_len} out {out_len} cell {o}: empty {w:?}"
                );
                assert!(w.end <= in_len);
                if o + 1 < out_len {
                    let next = window::window(o + 1, out_len, in_len);
                    assert!(
                        next.start <= w.end,
                        "gap after cell {o} (in {in_len}, out {out_len})"
                    );
                    assert!(next.start >= w.start && next.end >= w.end, "not monotone");
                }
            }
        }
    }
}

/// Every input position is covered by exactly the output cells `window::covering` names: the
/// ones the backward credits (brute force against the forward's windows).
#[test]
fn covering_is_exactly_the_cells_whose_windows_contain_each_position() {
    let mut checked = 0usize;
    for in_len in 1..=MAX_LEN {
        for out_len in 1..=MAX_LEN {
            let windows: Vec<_> = (0..out_len)
                .map(|o| window::window(o, out_len, in_len))
                .collect();
            for i in 0..in_len {
                let brute: Vec<usize> = (0..out_len).filter(|&o| windows[o].contains(&i)).collect();
                let covering: Vec<usize> = window::covering(i, in_len, out_len).collect();
                assert_eq!(covering, brute, "in {in_len} out {out_len} position {i}");
                assert!(!covering.is_empty());
                checked += 1;
            }
        }
    }
    println!("checked {checked} (input length, output length, position) triples");
}

/// The formula in exact integers, against the floating-point form PyTorch documents, for sizes
/// where f64 is exact.
#[test]
fn matches_floor_and_ceil_of_the_exact_ratio() {
    for in_len in 1..=MAX_LEN {
        for out_len in 1..=MAX_LEN {
            for o in 0..out_len {
                let s = ((o * in_len) as f64 / out_len as f64).floor() as usize;
                let e = (((o + 1) * in_len) as f64 / out_len as f64).ceil() as usize;
                assert_eq!(window::window(o, out_len, in_len), s..e);
            }
        }
    }
}

/// No overflow for lengths near usize::MAX (the formula runs in 128 bits).
#[test]
fn huge_lengths_do_not_overflow() {
    let big = usize::MAX / 2;
    assert_eq!(window::start(big - 1, big, big), big - 1);
    assert_eq!(window::end(big - 1, big, big), big);
    assert_eq!(window::window(0, 1, usize::MAX), 0..usize::MAX);
}
