//! Golden vectors for the `libm` functions consensus depends on (`docs/protocol.md` Part III §2):
//! `expf` and `logf` in every forward pass (softmax and loss), `log`, `sin` and `cos` in the
//! deterministic initialisation that defines each genesis checkpoint. The evaluator is bit-exact
//! only as long as these are; the workspace pins `libm` to one exact version, and these vectors
//! (input bits to output bits, recorded from that version across each function's range, special
//! values included) catch any change before it reaches a block.

/// `(x, expf(x))` as f32 bit patterns: underflow to 0 and subnormals, ±0, the range around 1,
/// overflow to +∞ near 88.7, and a sweep over [−104, 88].
const EXPF: &[(u32, u32)] = &[
    (0xc2cff0a4, 0x00000001),
    (0xc2aea8f6, 0x0080d71a),
    (0xc24a0000, 0x1b0d6cfa),
    (0xc1a20000, 0x30dc9ef1),
    (0xc1200000, 0x383e6bce),
    (0xc0b00000, 0x3b85ea53),
    (0xc0000000, 0x3e0a9555),
    (0xbf800000, 0x3ebc5ab2),
    (0xbf317215, 0x3f000001),
    (0xbf000000, 0x3f1b4598),
    (0xbdcccccd, 0x3f67a36d),
    (0xba83126f, 0x3f7fbe7f),
    (0xb3d6bf95, 0x3f7ffffe),
    (0x80000000, 0x3f800000),
    (0x00000000, 0x3f800000),
    (0x33d6bf95, 0x3f800001),
    (0x3dcccccd, 0x3f8d763e),
    (0x3f000000, 0x3fd3094c),
    (0x3f800000, 0x402df854),
    (0x40000000, 0x40ec7326),
    (0x41200000, 0x46ac14ee),
    (0x41a20000, 0x4e1486bb),
    (0x424a0000, 0x63e7b299),
    (0x42b170a4, 0x7f7f4648),
    (0x42b175c3, 0x7f800000),
    (0x42c80000, 0x7f800000),
    (0x00000001, 0x3f800000),
    (0x80000001, 0x3f800000),
    (0xc2d00000, 0x00000000),
    (0xc2c9e0f6, 0x0000000a),
    (0xc2c3c1ed, 0x000000dd),
    (0xc2bda2e3, 0x00001276),
    (0xc2b783da, 0x000189f4),
    (0xc2b164d0, 0x0020d747),
    (0xc2ab45c7, 0x01af3647),
    (0xc2a526bd, 0x03e9b2c8),
    (0xc29f07b5, 0x061bd9f8),
    (0xc298e8ab, 0x084fe00a),
    (0xc292c9a2, 0x0a8aa198),
    (0xc28caa98, 0x0cb8e822),
    (0xc2868b8f, 0x0ef6a09b),
    (0xc2806c85, 0x112479e8),
    (0xc2749af7, 0x135b60c8),
    (0xc2685ce4, 0x15924d92),
    (0xc25c1ed1, 0x17c32382),
    (0xc24fe0be, 0x1a022348),
    (0xc243a2ab, 0x1c2d93dc),
    (0xc2376498, 0x1e678478),
    (0xc22b2686, 0x209a65f0),
    (0xc21ee873, 0x22cdef9f),
    (0xc212aa5f, 0x250956cd),
    (0xc2066c4d, 0x27372e91),
    (0xc1f45c72, 0x29745420),
    (0xc1dbe04e, 0x2ba2f120),
    (0xc1c36427, 0x2dd95500),
    (0xc1aae803, 0x3010f01f),
    (0xc1926bdb, 0x32415199),
    (0xc173df6f, 0x3480ec69),
    (0xc142e71f, 0x36abf564),
    (0xc111eed8, 0x38e55b5e),
    (0xc0c1ed11, 0x3b18f55b),
    (0xc03ff904, 0x3d4c03c9),
    (0x3d7a0e98, 0x3f880ec8),
    (0x4047c958, 0x41b57907),
    (0x40c5d54b, 0x43f20c81),
    (0x4113e2ed, 0x46216be5),
    (0x4144db3d, 0x48574df2),
    (0x4175d384, 0x4a8f95ee),
    (0x419365ea, 0x4cbf83d9),
    (0x41abe20e, 0x4eff7101),
    (0x41c45e35, 0x512a5a9e),
    (0x41dcda5d, 0x536337fc),
    (0x41f55685, 0x55978852),
    (0x4206e952, 0x57ca1c70),
    (0x42132766, 0x5a06c9c8),
    (0x421f657a, 0x5c33c7ec),
    (0x422ba38e, 0x5e6fcadc),
    (0x4237e19e, 0x609fea5f),
    (0x42441fb2, 0x62d54bbc),
    (0x42505dc5, 0x650e3f2e),
    (0x425c9bd9, 0x673dbaaf),
    (0x4268d9e9, 0x697d0ebf),
    (0x427517fd, 0x6ba8c3b8),
    (0x4280ab08, 0x6de1190b),
    (0x4286ca12, 0x70161e3c),
    (0x428ce91a, 0x72483997),
    (0x42930824, 0x748587c5),
    (0x4299272e, 0x76b21a6c),
    (0x429f4638, 0x78ed8dfd),
    (0x42a56540, 0x7b1e6c54),
    (0x42ab844a, 0x7d534e2a),
    (0x42b1a354, 0x7f800000),
];

/// `(x, logf(x))` as f32 bit patterns: the smallest subnormal to `f32::MAX`, values around 1.
const LOGF: &[(u32, u32)] = &[
    (0x00000001, 0xc2ce8ed0),
    (0x006ce3ee, 0xc2aeff18),
    (0x00800000, 0xc2aeac50),
    (0x0da24260, 0xc28a27b5),
    (0x2edbe6ff, 0xc1b834f1),
    (0x3a83126f, 0xc0dd0c55),
    (0x3dcccccd, 0xc0135d8e),
    (0x3f000000, 0xbf317218),
    (0x3f7fffef, 0xb5880005),
    (0x3f800000, 0x00000000),
    (0x3f800008, 0x357ffff8),
    (0x40000000, 0x3f317218),
    (0x402df854, 0x3f800000),
    (0x41200000, 0x40135d8e),
    (0x43800000, 0x40b17218),
    (0x501502f9, 0x41b834f1),
    (0x7f7fffff, 0x42b17218),
    (0x03af5c29, 0xc2a5b9c8),
    (0x07af5c29, 0xc29aa2a6),
    (0x0baf5c29, 0xc28f8b85),
    (0x0faf5c29, 0xc2847463),
    (0x13af5c29, 0xc272ba83),
    (0x17af5c29, 0xc25c8c40),
    (0x1baf5c29, 0xc2465dfd),
    (0x1faf5c29, 0xc2302fba),
    (0x23af5c29, 0xc21a0177),
    (0x27af5c29, 0xc203d334),
    (0x2baf5c29, 0xc1db49e2),
    (0x2faf5c29, 0xc1aeed5c),
    (0x33af5c29, 0xc18290d6),
    (0x37af5c29, 0xc12c68a1),
    (0x3baf5c29, 0xc0a75f2a),
    (0x3faf5c29, 0x3ea12ee0),
    (0x43af5c29, 0x40bb8506),
    (0x47af5c29, 0x41367b8f),
    (0x4baf5c29, 0x41879a4d),
    (0x4faf5c29, 0x41b3f6d3),
    (0x53af5c29, 0x41e05359),
    (0x57af5c29, 0x420657f0),
    (0x5baf5c29, 0x421c8633),
    (0x5faf5c29, 0x4232b476),
    (0x63af5c29, 0x4248e2b9),
    (0x67af5c29, 0x425f10fc),
    (0x6baf5c29, 0x42753f3f),
    (0x6faf5c29, 0x4285b6c1),
    (0x73af5c29, 0x4290cde2),
    (0x77af5c29, 0x429be504),
    (0x7baf5c29, 0x42a6fc25),
    (0x3f800000, 0x00000000),
    (0x3f842108, 0x3d020ae4),
    (0x3f884210, 0x3d800aa4),
    (0x3f8c6319, 0x3dbd2e3c),
    (0x3f908421, 0x3df88c0a),
    (0x3f94a529, 0x3e191ed7),
    (0x3f98c632, 0x3e352d56),
    (0x3f9ce73a, 0x3e507c40),
    (0x3fa10842, 0x3e6b1590),
    (0x3fa5294a, 0x3e82813c),
    (0x3fa94a52, 0x3e8f25be),
    (0x3fad6b5b, 0x3e9b7c43),
    (0x3fb18c63, 0x3ea78873),
    (0x3fb5ad6b, 0x3eb34dbb),
    (0x3fb9ce74, 0x3ebecf4d),
    (0x3fbdef7c, 0x3eca101e),
    (0x3fc21084, 0x3ed512f9),
    (0x3fc6318c, 0x3edfda7c),
    (0x3fca5294, 0x3eea6918),
    (0x3fce739d, 0x3ef4c11c),
    (0x3fd294a5, 0x3efee4ae),
    (0x3fd6b5ae, 0x3f046aed),
    (0x3fdad6b6, 0x3f094b44),
    (0x3fdef7be, 0x3f0e1446),
    (0x3fe318c6, 0x3f12c6cd),
    (0x3fe739ce, 0x3f1763a9),
    (0x3feb5ad6, 0x3f1beb9f),
    (0x3fef7bdf, 0x3f205f68),
    (0x3ff39ce7, 0x3f24bfb5),
    (0x3ff7bdf0, 0x3f290d2f),
    (0x3ffbdef8, 0x3f2d4872),
    (0x40000000, 0x3f317218),
];

/// `(u, log(u))` as f64 bit patterns over (0, 1], where Box–Muller takes logarithms.
const LOG: &[(u64, u64)] = &[
    (0x3ff0000000000000, 0x0000000000000000),
    (0x3fe0000000000000, 0xbfe62e42fefa39ef),
    (0x01a56e1fc2f8f359, 0xc085963447f87fb5),
    (0x3ca0000000000000, 0xc0425e4f7b2737fa),
    (0x3fefffffff768fa1, 0xbe112e0be024e4bc),
    (0x3fb999999999999a, 0xc0026bb1bbb55515),
    (0x3f9f07c1f07c1f08, 0xc00bf8d8f4d5b8d1),
    (0x3faf07c1f07c1f08, 0xc0066d4835172a55),
    (0x3fb745d1745d1746, 0xc0032ee3b77f374c),
    (0x3fbf07c1f07c1f08, 0xc000e1b775589bd9),
    (0x3fc364d9364d9365, 0xbffe316ff1bde46e),
    (0x3fc745d1745d1746, 0xbffb46a5ef8151a0),
    (0x3fcb26c9b26c9b27, 0xbff8cf3f3b79174b),
    (0x3fcf07c1f07c1f08, 0xbff6ac4d6b341abb),
    (0x3fd1745d1745d174, 0xbff4c9dcf4516b8d),
    (0x3fd364d9364d9365, 0xbff31a4e7240c777),
    (0x3fd5555555555555, 0xbff193ea7aad030b),
    (0x3fd745d1745d1746, 0xbff02f84700434a8),
    (0x3fd9364d9364d936, 0xbfedcf532690b200),
    (0x3fdb26c9b26c9b27, 0xbfeb703b77f7f4a6),
    (0x3fdd1745d1745d17, 0xbfe93b0aee21c2c8),
    (0x3fdf07c1f07c1f08, 0xbfe72a57d76dfb87),
    (0x3fe07c1f07c1f07c, 0xbfe539b4cb6ce55d),
    (0x3fe1745d1745d174, 0xbfe36576e9a89d2b),
    (0x3fe26c9b26c9b26d, 0xbfe1aa8bbb441692),
    (0x3fe364d9364d9365, 0xbfe00659e58754fe),
    (0x3fe45d1745d1745d, 0xbfdced5303305101),
    (0x3fe5555555555555, 0xbfd9f323ecbf984d),
    (0x3fe64d9364d9364e, 0xbfd71ad7b8202707),
    (0x3fe745d1745d1746, 0xbfd4618bc21c5ec2),
    (0x3fe83e0f83e0f83e, 0xbfd1c4b7e7415ced),
    (0x3fe9364d9364d936, 0xbfce84409e59e045),
    (0x3fea2e8ba2e8ba2f, 0xbfc9af93cd234410),
    (0x3feb26c9b26c9b27, 0xbfc507e1e3f6eadb),
    (0x3fec1f07c1f07c1f, 0xbfc08a02907bab24),
    (0x3fed1745d1745d17, 0xbfb8663f793c46c9),
    (0x3fee0f83e0f83e10, 0xbfb001558891aede),
    (0x3fef07c1f07c1f08, 0xbf9f829b0e7832f8),
];

/// `(θ, sin θ, cos θ)` as f64 bit patterns over [0, 2π).
const SIN_COS: &[(u64, u64, u64)] = &[
    (0x0000000000000000, 0x0000000000000000, 0x3ff0000000000000),
    (0x3ddb7cdfd9d7bdbb, 0x3ddb7cdfd9d7bdbb, 0x3ff0000000000000),
    (0x3ff921fb54442d18, 0x3ff0000000000000, 0x3c91a62633145c07),
    (0x400921fb54442d18, 0x3ca1a62633145c07, 0xbff0000000000000),
    (0x4012d97c7f3321d2, 0xbff0000000000000, 0xbcaa79394c9e8a0a),
    (0x3fb2992580eac536, 0x3fb294f59dec9b6e, 0x3fefea6420c7ea7e),
    (0x3fd137470a5cc7da, 0x3fd1025142810f48, 0x3feed9650ecce4f2),
    (0x3fddc844b47ede66, 0x3fdcb80f9e0a127b, 0x3fec98e7eb82edeb),
    (0x3fe52ca12f507a79, 0x3fe3a9a26edb8fc9, 0x3fe93f142cc45f38),
    (0x3feb7520046185bf, 0x3fe835cc7b2af67f, 0x3fe4ece1124088e2),
    (0x3ff0decf6cb94882, 0x3febd3c8faa22f96, 0x3fdf99a2a96166d9),
    (0x3ff4030ed741ce25, 0x3fee600221d9533f, 0x3fd422a1dca46bdb),
    (0x3ff7274e41ca53c8, 0x3fefc16768e609f3, 0x3fbf9628784e1383),
    (0x3ffa4b8dac52d96b, 0x3fefea6420c7ea7e, 0xbfb294f59dec9b63),
    (0x3ffd6fcd16db5f0e, 0x3feed9650ecce4f2, 0xbfd1025142810f45),
    (0x40004a0640b1f258, 0x3fec98e7eb82eded, 0xbfdcb80f9e0a1274),
    (0x4001dc25f5f6352a, 0x3fe93f142cc45f3a, 0xbfe3a9a26edb8fc8),
    (0x40036e45ab3a77fb, 0x3fe4ece1124088e4, 0xbfe835cc7b2af67c),
    (0x40050065607ebacd, 0x3fdf99a2a96166da, 0xbfebd3c8faa22f95),
    (0x4006928515c2fd9e, 0x3fd422a1dca46bdf, 0xbfee600221d9533e),
    (0x400824a4cb074070, 0x3fbf9628784e1388, 0xbfefc16768e609f3),
    (0x4009b6c4804b8342, 0xbfb294f59dec9b6f, 0xbfefea6420c7ea7e),
    (0x400b48e4358fc614, 0xbfd1025142810f4c, 0xbfeed9650ecce4f1),
    (0x400cdb03ead408e5, 0xbfdcb80f9e0a127b, 0xbfec98e7eb82edeb),
    (0x400e6d23a0184bb7, 0xbfe3a9a26edb8fcb, 0xbfe93f142cc45f37),
    (0x400fff43555c8e88, 0xbfe835cc7b2af67f, 0xbfe4ece1124088e2),
    (0x4010c8b1855068ad, 0xbfebd3c8faa22f97, 0xbfdf99a2a96166d4),
    (0x401191c15ff28a16, 0xbfee600221d95340, 0xbfd422a1dca46bd1),
    (0x40125ad13a94ab7e, 0xbfefc16768e609f2, 0xbfbf9628784e138c),
    (0x401323e11536cce7, 0xbfefea6420c7ea7e, 0x3fb294f59dec9b6a),
    (0x4013ecf0efd8ee50, 0xbfeed9650ecce4f1, 0x3fd1025142810f4b),
    (0x4014b600ca7b0fb9, 0xbfec98e7eb82edea, 0x3fdcb80f9e0a1281),
    (0x40157f10a51d3121, 0xbfe93f142cc45f3a, 0x3fe3a9a26edb8fc7),
    (0x401648207fbf528a, 0xbfe4ece1124088e2, 0x3fe835cc7b2af67f),
    (0x401711305a6173f3, 0xbfdf99a2a96166d5, 0x3febd3c8faa22f97),
    (0x4017da403503955c, 0xbfd422a1dca46bd2, 0x3fee600221d95340),
    (0x4018a3500fa5b6c4, 0xbfbf9628784e1390, 0x3fefc16768e609f2),
];

#[test]
fn expf_matches_the_pinned_bits() {
    for &(x, y) in EXPF {
        let got = libm::expf(f32::from_bits(x)).to_bits();
        let (xf, gf, yf) = (f32::from_bits(x), f32::from_bits(got), f32::from_bits(y));
        assert_eq!(got, y, "expf({xf:e}) = {gf:e}, pinned {yf:e}");
    }
}

#[test]
fn logf_matches_the_pinned_bits() {
    for &(x, y) in LOGF {
        let got = libm::logf(f32::from_bits(x)).to_bits();
        let (xf, gf, yf) = (f32::from_bits(x), f32::from_bits(got), f32::from_bits(y));
        assert_eq!(got, y, "logf({xf:e}) = {gf:e}, pinned {yf:e}");
    }
}

#[test]
fn log_sin_cos_match_the_pinned_bits() {
    for &(x, y) in LOG {
        assert_eq!(libm::log(f64::from_bits(x)).to_bits(), y, "log({:e})", f64::from_bits(x));
    }
    for &(x, s, c) in SIN_COS {
        let x = f64::from_bits(x);
        assert_eq!(libm::sin(x).to_bits(), s, "sin({x:e})");
        assert_eq!(libm::cos(x).to_bits(), c, "cos({x:e})");
    }
}

#[test]
fn vectors_cover_the_special_values() {
    let exps: Vec<f32> = EXPF.iter().map(|&(_, y)| f32::from_bits(y)).collect();
    assert!(exps.contains(&0.0) && exps.contains(&f32::INFINITY) && exps.contains(&1.0));
    assert!(exps.iter().any(|y| y.is_subnormal()));
    let logs: Vec<f32> = LOGF.iter().map(|&(_, y)| f32::from_bits(y)).collect();
    assert!(logs.contains(&0.0));
    assert!(logs.iter().any(|y| *y < -100.0) && logs.iter().any(|y| *y > 88.0));
}
