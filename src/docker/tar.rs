//! A minimal ustar writer, enough for a busybox root filesystem
//! (`build.rs`) and for files copied into a container (`files.rs`):
//! Docker's archive endpoints take tar streams.

/// A minimal ustar writer: regular files, directories, symlinks.
#[derive(Default)]
pub(crate) struct Tar {
    out: Vec<u8>,
}

impl Tar {
    fn header(&mut self, name: &str, mode: u32, size: usize, kind: u8, link: &str) {
        let mut h = [0u8; 512];
        let put = |h: &mut [u8; 512], at: usize, len: usize, s: &[u8]| {
            let n = s.len().min(len);
            h[at..at + n].copy_from_slice(&s[..n]);
        };
        let octal = |v: u64, width: usize| format!("{v:0w$o}\0", w = width - 1).into_bytes();
        // Names over 100 bytes go into the ustar prefix.
        let (prefix, name) = if name.len() > 100 {
            let cut =
                name[..name.len() - 100].len() + name[name.len() - 100..].find('/').unwrap_or(0);
            (&name[..cut], &name[cut + 1..])
        } else {
            ("", name)
        };
        put(&mut h, 0, 100, name.as_bytes());
        put(&mut h, 100, 8, &octal(mode as u64, 8));
        put(&mut h, 108, 8, &octal(0, 8));
        put(&mut h, 116, 8, &octal(0, 8));
        put(&mut h, 124, 12, &octal(size as u64, 12));
        put(&mut h, 136, 12, &octal(1_600_000_000, 12));
        put(&mut h, 148, 8, b"        ");
        h[156] = kind;
        put(&mut h, 157, 100, link.as_bytes());
        put(&mut h, 257, 6, b"ustar\0");
        put(&mut h, 263, 2, b"00");
        put(&mut h, 265, 32, b"root");
        put(&mut h, 297, 32, b"root");
        put(&mut h, 345, 155, prefix.as_bytes());
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        put(&mut h, 148, 8, format!("{sum:06o}\0 ").as_bytes());
        self.out.extend_from_slice(&h);
    }

    pub(crate) fn dir(&mut self, name: &str, mode: u32) {
        self.header(
            &format!("{}/", name.trim_end_matches('/')),
            mode,
            0,
            b'5',
            "",
        );
    }

    pub(crate) fn file(&mut self, name: &str, mode: u32, content: &[u8]) {
        self.header(name, mode, content.len(), b'0', "");
        self.out.extend_from_slice(content);
        let pad = (512 - content.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
    }

    pub(crate) fn symlink(&mut self, name: &str, target: &str) {
        self.header(name, 0o777, 0, b'2', target);
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.out.extend(std::iter::repeat_n(0u8, 1024));
        self.out
    }
}
