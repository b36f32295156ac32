;; The merge's hottest loops in WebAssembly SIMD: bf16 decoding and encoding,
;; and the element-wise combines of linear and task arithmetic. The kernels
;; work on blocks staged in this module's own memory (simd-kernels.ts copies
;; them in and out); every count is a multiple of 8 elements, the caller pads.
;; The arithmetic is the JavaScript kernels', operation for operation (products
;; and sums in float64, rounded to float32 where those round), so both give
;; the same bits. Helpers are written out in every loop: V8 (12.4) does not
;; inline wasm calls, and a call per vector made the loops three times slower.
;; Built into simd-kernels.wasm by scripts/wasm/build-simd-kernels.ts.
(module
  (memory (export "memory") 1)

  ;; bf16 halves at $src into float32 bits at $dst (a bf16 is the top half of
  ;; a float32); returns how many are NaN or infinite (exponent all ones).
  (func (export "decodeBf16") (param $src i32) (param $dst i32) (param $n i32) (result i32)
    (local $end i32) (local $v v128) (local $lo v128) (local $hi v128) (local $bad v128) (local $exp v128)
    (local.set $exp (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000))
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 1))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $v (v128.load (local.get $src)))
        (local.set $lo (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $v)) (i32.const 16)))
        (local.set $hi (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $v)) (i32.const 16)))
        (v128.store (local.get $dst) (local.get $lo))
        (v128.store offset=16 (local.get $dst) (local.get $hi))
        (local.set $bad (i32x4.sub (local.get $bad) (i32x4.eq (v128.and (local.get $lo) (local.get $exp)) (local.get $exp))))
        (local.set $bad (i32x4.sub (local.get $bad) (i32x4.eq (v128.and (local.get $hi) (local.get $exp)) (local.get $exp))))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
        (br $next)))
    (call $sumLanes (local.get $bad)))

  ;; How many of the float32s at $src are NaN or infinite.
  (func (export "countNonFinite") (param $src i32) (param $n i32) (result i32)
    (local $end i32) (local $bad v128) (local $exp v128)
    (local.set $exp (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000))
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $bad (i32x4.sub (local.get $bad) (i32x4.eq (v128.and (v128.load (local.get $src)) (local.get $exp)) (local.get $exp))))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (br $next)))
    (call $sumLanes (local.get $bad)))

  ;; float32s at $src into bf16 halves at $dst: nearest, ties to even; a NaN
  ;; stays a (quiet) NaN instead of rounding into infinity.
  (func (export "encodeBf16") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $x v128) (local $y v128) (local $a v128) (local $b v128)
    (local $one v128) (local $half v128) (local $quiet v128) (local $abs v128) (local $inf v128)
    (local.set $one (v128.const i32x4 1 1 1 1))
    (local.set $half (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff))
    (local.set $quiet (v128.const i32x4 0x40 0x40 0x40 0x40))
    (local.set $abs (v128.const i32x4 0x7fffffff 0x7fffffff 0x7fffffff 0x7fffffff))
    (local.set $inf (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000))
    (local.set $end (i32.add (local.get $dst) (i32.shl (local.get $n) (i32.const 1))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $dst) (local.get $end)))
        ;; (x + 0x7fff + lsb) >>> 16, or for a NaN (|x| above infinity's bits) its top half with the quiet bit set.
        (local.set $x (v128.load (local.get $src)))
        (local.set $y (i32x4.shr_u (local.get $x) (i32.const 16)))
        (local.set $a
          (v128.bitselect
            (v128.or (local.get $y) (local.get $quiet))
            (i32x4.shr_u (i32x4.add (i32x4.add (local.get $x) (local.get $half)) (v128.and (local.get $y) (local.get $one))) (i32.const 16))
            (i32x4.gt_u (v128.and (local.get $x) (local.get $abs)) (local.get $inf))))
        (local.set $x (v128.load offset=16 (local.get $src)))
        (local.set $y (i32x4.shr_u (local.get $x) (i32.const 16)))
        (local.set $b
          (v128.bitselect
            (v128.or (local.get $y) (local.get $quiet))
            (i32x4.shr_u (i32x4.add (i32x4.add (local.get $x) (local.get $half)) (v128.and (local.get $y) (local.get $one))) (i32.const 16))
            (i32x4.gt_u (v128.and (local.get $x) (local.get $abs)) (local.get $inf))))
        (v128.store (local.get $dst) (i16x8.narrow_i32x4_u (local.get $a) (local.get $b)))
        (local.set $src (i32.add (local.get $src) (i32.const 32)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (br $next))))

  ;; Linear's weighted sum, one model at a time: the first sets
  ;; out = f32(c × a), each next one out = f32(out + c × a).
  (func (export "linearFirst") (param $a i32) (param $out i32) (param $c f64) (param $n i32)
    (local $end i32) (local $cv v128) (local $x v128)
    (local.set $cv (f64x2.splat (local.get $c)))
    (local.set $end (i32.add (local.get $out) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $out) (local.get $end)))
        (local.set $x (v128.load (local.get $a)))
        (v128.store (local.get $out)
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
            (f32x4.demote_f64x2_zero (f64x2.mul (local.get $cv) (f64x2.promote_low_f32x4 (local.get $x))))
            (f32x4.demote_f64x2_zero (f64x2.mul (local.get $cv) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $x) (local.get $x)))))))
        (local.set $a (i32.add (local.get $a) (i32.const 16)))
        (local.set $out (i32.add (local.get $out) (i32.const 16)))
        (br $next))))

  (func (export "linearAdd") (param $a i32) (param $out i32) (param $c f64) (param $n i32)
    (local $end i32) (local $cv v128) (local $x v128) (local $s v128)
    (local.set $cv (f64x2.splat (local.get $c)))
    (local.set $end (i32.add (local.get $out) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $out) (local.get $end)))
        (local.set $x (v128.load (local.get $a)))
        (local.set $s (v128.load (local.get $out)))
        (v128.store (local.get $out)
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
            (f32x4.demote_f64x2_zero
              (f64x2.add (f64x2.promote_low_f32x4 (local.get $s))
                         (f64x2.mul (local.get $cv) (f64x2.promote_low_f32x4 (local.get $x)))))
            (f32x4.demote_f64x2_zero
              (f64x2.add (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $s) (local.get $s)))
                         (f64x2.mul (local.get $cv) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $x) (local.get $x))))))))
        (local.set $a (i32.add (local.get $a) (i32.const 16)))
        (local.set $out (i32.add (local.get $out) (i32.const 16)))
        (br $next))))

  ;; Task arithmetic without sparsification, one model at a time into a
  ;; float64 sum at $acc: the first sets acc = w × f32(d − base), each next
  ;; one adds its own; then out = f32(base + acc / divisor × λ).
  (func (export "taskFirst") (param $d i32) (param $base i32) (param $acc i32) (param $w f64) (param $n i32)
    (call $task (local.get $d) (local.get $base) (local.get $acc) (local.get $w) (local.get $n) (i32.const 0)))

  (func (export "taskAdd") (param $d i32) (param $base i32) (param $acc i32) (param $w f64) (param $n i32)
    (call $task (local.get $d) (local.get $base) (local.get $acc) (local.get $w) (local.get $n) (i32.const 1)))

  (func $task (param $d i32) (param $base i32) (param $acc i32) (param $w f64) (param $n i32) (param $add i32)
    (local $end i32) (local $wv v128) (local $delta v128) (local $lo v128) (local $hi v128)
    (local.set $wv (f64x2.splat (local.get $w)))
    (local.set $end (i32.add (local.get $d) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $d) (local.get $end)))
        ;; A float32 difference is the float64 difference rounded once: the same bits.
        (local.set $delta (f32x4.sub (v128.load (local.get $d)) (v128.load (local.get $base))))
        (local.set $lo (f64x2.mul (local.get $wv) (f64x2.promote_low_f32x4 (local.get $delta))))
        (local.set $hi (f64x2.mul (local.get $wv) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $delta) (local.get $delta)))))
        (if (local.get $add)
          (then
            (local.set $lo (f64x2.add (v128.load (local.get $acc)) (local.get $lo)))
            (local.set $hi (f64x2.add (v128.load offset=16 (local.get $acc)) (local.get $hi)))))
        (v128.store (local.get $acc) (local.get $lo))
        (v128.store offset=16 (local.get $acc) (local.get $hi))
        (local.set $d (i32.add (local.get $d) (i32.const 16)))
        (local.set $base (i32.add (local.get $base) (i32.const 16)))
        (local.set $acc (i32.add (local.get $acc) (i32.const 32)))
        (br $next))))

  (func (export "taskFinish") (param $base i32) (param $acc i32) (param $out i32) (param $divisor f64) (param $lambda f64) (param $n i32)
    (local $end i32) (local $dv v128) (local $lv v128) (local $b v128)
    (local.set $dv (f64x2.splat (local.get $divisor)))
    (local.set $lv (f64x2.splat (local.get $lambda)))
    (local.set $end (i32.add (local.get $out) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $out) (local.get $end)))
        (local.set $b (v128.load (local.get $base)))
        (v128.store (local.get $out)
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
            (f32x4.demote_f64x2_zero
              (f64x2.add (f64x2.promote_low_f32x4 (local.get $b))
                         (f64x2.mul (f64x2.div (v128.load (local.get $acc)) (local.get $dv)) (local.get $lv))))
            (f32x4.demote_f64x2_zero
              (f64x2.add (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $b) (local.get $b)))
                         (f64x2.mul (f64x2.div (v128.load offset=16 (local.get $acc)) (local.get $dv)) (local.get $lv))))))
        (local.set $base (i32.add (local.get $base) (i32.const 16)))
        (local.set $acc (i32.add (local.get $acc) (i32.const 32)))
        (local.set $out (i32.add (local.get $out) (i32.const 16)))
        (br $next))))

  (func $sumLanes (param $x v128) (result i32)
    (i32.add (i32.add (i32x4.extract_lane 0 (local.get $x)) (i32x4.extract_lane 1 (local.get $x)))
             (i32.add (i32x4.extract_lane 2 (local.get $x)) (i32x4.extract_lane 3 (local.get $x)))))


)
