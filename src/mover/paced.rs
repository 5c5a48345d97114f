//! rsync's stdout, read at a pace. On a tree of small files rsync writes (and flushes) a progress line
//! per file: 100,000 writes for 100,000 files. A reader waiting on the pipe, whether blocked in `read`
//! or registered with the async runtime's epoll (which is woken by every write even while no task
//! awaits the pipe), is woken by each of them: on two CPUs those context switches cost the sender
//! more CPU than the TLS tunnel (docs/benchmarks.md). Here a thread of its own reads whatever has
//! piled up, then sleeps; while it sleeps nothing waits on the pipe, so rsync's writes wake nobody.

use std::io::Read as _;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::{Error, Result};

/// Most bytes one read takes: a pipe's default capacity.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight to the async side before the thread waits for it.
const QUEUED: usize = 16;

/// Reads `pipe` (taken out of the async runtime, blocking) on a thread; each read's bytes arrive on
/// the returned channel, an error as its last item, the end of the pipe as the channel closing. After
/// a read of less than half a [`CHUNK`] the thread sleeps `pace`: the pipe is drained faster than it fills.
pub(super) fn read(
    pipe: tokio::process::ChildStdout,
    pace: Duration,
) -> Result<mpsc::Receiver<std::io::Result<Vec<u8>>>> {
    let mut pipe = std::fs::File::from(
        pipe.into_owned_fd()
            .map_err(Error::io("taking rsync's output pipe"))?,
    );
    let (sender, receiver) = mpsc::channel(QUEUED);
    std::thread::Builder::new()
        .name("ferry-rsync-out".into())
        .spawn(move || {
            let mut chunk = vec![0u8; CHUNK];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(read) => {
                        if sender.blocking_send(Ok(chunk[..read].to_vec())).is_err() {
                            break;
                        }
                        // A read of half a pipe or more means output piles up faster than the pace
                        // drains it: read again at once, so rsync never waits on a full pipe.
                        if read < CHUNK / 2 {
                            std::thread::sleep(pace);
                        }
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(err) => {
                        let _gone = sender.blocking_send(Err(err));
                        break;
                    }
                }
            }
        })
        .map_err(Error::io("starting the thread that reads rsync's output"))?;
    Ok(receiver)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_byte_arrives_in_order_and_the_end_closes_the_channel() {
        // 50,000 short lines written one by one, like rsync's progress: all arrive, in far fewer reads.
        let mut child = tokio::process::Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 50000 ]; do echo \"line $i\"; i=$((i+1)); done",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut chunks = read(child.stdout.take().unwrap(), Duration::from_millis(10)).unwrap();
        let (mut bytes, mut reads) = (Vec::new(), 0);
        while let Some(chunk) = chunks.recv().await {
            bytes.extend_from_slice(&chunk.unwrap());
            reads += 1;
        }
        assert!(child.wait().await.unwrap().success());
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 50_000);
        assert!(
            lines
                .iter()
                .enumerate()
                .all(|(i, line)| *line == format!("line {i}"))
        );
        assert!(reads < 5_000, "{reads} reads for 50,000 lines");
    }
}
