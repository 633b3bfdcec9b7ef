//! The terminal while `adit top` runs: the alternate screen with the
//! cursor hidden, keys read one at a time without echo (Ctrl-C still
//! signals), all restored when the [`Screen`] is dropped.

use std::io::{IsTerminal as _, Read as _, Write as _};

use tokio::sync::mpsc;

/// The terminal as `adit top` set it up.
#[derive(Debug)]
pub(super) struct Screen {
    tty: bool,
    saved: Option<libc::termios>,
}

impl Screen {
    /// Switches to the alternate screen and single-key input (when stdout
    /// and stdin are terminals; otherwise frames are just printed).
    pub(super) fn enter() -> std::io::Result<Self> {
        let tty = std::io::stdout().is_terminal();
        let saved = if std::io::stdin().is_terminal() {
            key_at_a_time()
        } else {
            None
        };
        if tty {
            let mut out = std::io::stdout().lock();
            out.write_all(b"\x1b[?1049h\x1b[?25l")?;
            out.flush()?;
        }
        Ok(Self { tty, saved })
    }

    /// Bold headings and screen control are for terminals.
    pub(super) fn ansi(&self) -> bool {
        self.tty
    }

    /// Replaces the screen with `text`.
    pub(super) fn draw(&self, text: &str) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        if self.tty {
            out.write_all(b"\x1b[H\x1b[2J")?;
        }
        out.write_all(text.as_bytes())?;
        if !self.tty {
            out.write_all(b"\n")?;
        }
        out.flush()
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        if let Some(t) = self.saved.take() {
            // SAFETY: tcsetattr reads the struct tcgetattr filled.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t);
            }
        }
        if self.tty {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(b"\x1b[?25h\x1b[?1049l");
            let _ = out.flush();
        }
    }
}

/// Turns off line buffering and echo on stdin; answers the settings to
/// restore, or None when stdin is not a terminal that allows it.
fn key_at_a_time() -> Option<libc::termios> {
    // SAFETY: termios is plain data; tcgetattr fills it, tcsetattr reads it.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(libc::STDIN_FILENO, &mut t) != 0 {
            return None;
        }
        let saved = t;
        t.c_lflag &= !(libc::ICANON | libc::ECHO);
        t.c_cc[libc::VMIN] = 1;
        t.c_cc[libc::VTIME] = 0;
        if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t) != 0 {
            return None;
        }
        Some(saved)
    }
}

/// Receives once `q` (or `Q`) is typed; stdin is read on its own thread.
pub(super) fn quit_keys() -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(1);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut byte = [0u8; 1];
        while let Ok(1) = stdin.read(&mut byte) {
            if matches!(byte[0], b'q' | b'Q') {
                let _ = tx.blocking_send(());
                return;
            }
        }
        // End of input: no key can come; the sender goes and Ctrl-C is
        // the way out.
    });
    rx
}
