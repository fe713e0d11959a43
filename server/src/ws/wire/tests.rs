use super::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

const LIMIT: usize = 1024;

/// A client frame: `opcode`, final or not, masked with `mask`.
fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut frame = vec![if fin { 0x80 | opcode } else { opcode }];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

fn text(payload: &str) -> Vec<u8> {
    client_frame(true, TEXT, payload.as_bytes(), [1, 2, 3, 4])
}

fn open() -> (Reader<DuplexStream>, DuplexStream) {
    let (server, client) = duplex(1 << 20);
    (Reader::new(server, &[], LIMIT), client)
}

async fn next(reader: &mut Reader<DuplexStream>) -> Result<Message, String> {
    match reader.next().await {
        Some(Ok(msg)) => Ok(msg),
        Some(Err(err)) => Err(wire_error(&err).map_or_else(|| err.to_string(), |e| e.to_string())),
        None => Err("ended".into()),
    }
}

fn is_text(msg: &Message, want: &str) -> bool {
    matches!(msg, Message::Text(t) if t.as_str() == want)
}

#[tokio::test]
async fn frames_come_whole_however_the_bytes_are_cut() {
    let (mut reader, mut client) = open();
    let long = "x".repeat(700);
    let mut bytes = text("one");
    bytes.extend(text(&long));
    bytes.extend(text("three"));
    // Byte by byte through the first frames, then the rest at once.
    for byte in &bytes[..12] {
        client.write_all(&[*byte]).await.expect("write");
        tokio::task::yield_now().await;
    }
    client.write_all(&bytes[12..]).await.expect("write");
    assert!(is_text(&next(&mut reader).await.expect("one"), "one"));
    assert!(is_text(&next(&mut reader).await.expect("long"), &long));
    assert!(is_text(&next(&mut reader).await.expect("three"), "three"));
    assert_eq!(reader.kept.capacity(), 0, "nothing kept between frames");
    drop(client);
    assert_eq!(next(&mut reader).await, Err("ended".into()));
}

#[tokio::test]
async fn bytes_read_past_the_upgrade_come_first() {
    let (server, mut client) = duplex(4096);
    let mut early = text("early");
    early.extend(&text("split")[..3]);
    let mut reader = Reader::new(server, &early, LIMIT);
    client.write_all(&text("split")[3..]).await.expect("write");
    assert!(is_text(&next(&mut reader).await.expect("early"), "early"));
    assert!(is_text(&next(&mut reader).await.expect("split"), "split"));
}

#[tokio::test]
async fn fragments_make_one_message_and_controls_may_come_between() {
    let (mut reader, mut client) = open();
    let mask = [9, 8, 7, 6];
    let mut bytes = client_frame(false, TEXT, b"hel", mask);
    bytes.extend(client_frame(true, PING, b"p", mask));
    bytes.extend(client_frame(false, CONTINUATION, b"lo ", mask));
    bytes.extend(client_frame(true, CONTINUATION, "wörld".as_bytes(), mask));
    bytes.extend(client_frame(true, BINARY, &[0, 255], mask));
    client.write_all(&bytes).await.expect("write");
    assert!(matches!(next(&mut reader).await, Ok(Message::Ping(p)) if p.as_ref() == b"p"));
    assert!(is_text(
        &next(&mut reader).await.expect("text"),
        "hello wörld"
    ));
    assert!(matches!(next(&mut reader).await, Ok(Message::Binary(b)) if b.as_ref() == [0, 255]));
}

#[tokio::test]
async fn a_message_over_the_limit_is_refused_from_its_header() {
    let (mut reader, mut client) = open();
    // Only the header of a frame over the limit: refused without its payload.
    let frame = client_frame(true, TEXT, &vec![b'a'; LIMIT + 1], [0; 4]);
    client.write_all(&frame[..8]).await.expect("write");
    let err = next(&mut reader).await.expect_err("too big");
    assert!(err.contains("over the limit"), "{err}");
    assert_eq!(
        next(&mut reader).await,
        Err("ended".into()),
        "ended after it"
    );

    // Fragments that only together pass the limit.
    let (mut reader, mut client) = open();
    let half = vec![b'a'; LIMIT / 2 + 1];
    let mut bytes = client_frame(false, TEXT, &half, [0; 4]);
    bytes.extend(client_frame(true, CONTINUATION, &half, [0; 4]));
    client.write_all(&bytes).await.expect("write");
    let err = next(&mut reader).await.expect_err("too big");
    assert!(err.contains("over the limit"), "{err}");
}

#[tokio::test]
async fn broken_frames_are_refused_with_their_close_codes() {
    let cases: Vec<(Vec<u8>, u16)> = vec![
        // Unmasked.
        (vec![0x81, 0x02, b'h', b'i'], close::PROTOCOL),
        // A reserved bit.
        (vec![0xC1, 0x80, 0, 0, 0, 0], close::PROTOCOL),
        // An unknown opcode.
        (client_frame(true, 0x3, b"", [0; 4]), close::PROTOCOL),
        // A fragmented ping.
        (client_frame(false, PING, b"", [0; 4]), close::PROTOCOL),
        // A continuation with nothing begun.
        (
            client_frame(true, CONTINUATION, b"x", [0; 4]),
            close::PROTOCOL,
        ),
        // Text that is not UTF-8.
        (
            client_frame(true, TEXT, &[0xC3, 0x28], [5; 4]),
            close::INVALID_DATA,
        ),
        // A close with half a code.
        (client_frame(true, CLOSE, &[3], [0; 4]), close::PROTOCOL),
    ];
    for (bytes, code) in cases {
        let (mut reader, mut client) = open();
        client.write_all(&bytes).await.expect("write");
        let err = reader.next().await.expect("an item").expect_err("refused");
        let told = wire_error(&err)
            .and_then(WireError::close_code)
            .map(|c| c.0);
        assert_eq!(told, Some(code), "{bytes:?}: {err}");
    }
}

#[tokio::test]
async fn a_close_is_read_with_its_code_and_ends_the_frames() {
    let (mut reader, mut client) = open();
    let mut payload = 4321u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    let mut bytes = client_frame(true, CLOSE, &payload, [1; 4]);
    bytes.extend(text("after"));
    client.write_all(&bytes).await.expect("write");
    match next(&mut reader).await {
        Ok(Message::Close(Some(frame))) => {
            assert_eq!((frame.code, frame.reason.as_str()), (4321, "bye"));
        }
        other => panic!("a close: {other:?}"),
    }
    assert_eq!(next(&mut reader).await, Err("ended".into()));
}

/// Reads what the writer wrote: (opcode, payload) of each frame.
async fn frames_written(client: &mut DuplexStream, count: usize) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    for _ in 0..count {
        let mut head = [0u8; 2];
        client.read_exact(&mut head).await.expect("head");
        assert_eq!(head[0] & 0xF0, 0x80, "final, no reserved bits");
        assert_eq!(head[1] & 0x80, 0, "a server frame is not masked");
        let len = match head[1] {
            126 => usize::from(client.read_u16().await.expect("len")),
            127 => usize::try_from(client.read_u64().await.expect("len")).expect("usize"),
            n => usize::from(n),
        };
        let mut payload = vec![0; len];
        client.read_exact(&mut payload).await.expect("payload");
        frames.push((head[0] & 0x0F, payload));
    }
    frames
}

#[tokio::test]
async fn the_writer_frames_each_message_and_frees_its_buffer_once_flushed() {
    let (server, mut client) = duplex(1 << 20);
    let mut writer = Writer::new(server);
    let medium = "m".repeat(300);
    let large = "l".repeat(70_000);
    writer.feed(Message::Text("hi".into())).await.expect("feed");
    writer
        .feed(Message::Text(medium.clone().into()))
        .await
        .expect("feed");
    writer
        .feed(Message::Ping(Bytes::from_static(b"p")))
        .await
        .expect("feed");
    writer
        .send(Message::Text(large.clone().into()))
        .await
        .expect("send");
    assert_eq!(writer.out.capacity(), 0, "nothing kept once flushed");
    let frames = frames_written(&mut client, 4).await;
    assert_eq!(frames[0], (TEXT, b"hi".to_vec()));
    assert_eq!(frames[1], (TEXT, medium.into_bytes()));
    assert_eq!(frames[2], (PING, b"p".to_vec()));
    assert_eq!(frames[3], (TEXT, large.into_bytes()));

    let bye = CloseFrame {
        code: close::GOING_AWAY,
        reason: Utf8Bytes::from_static("server shutting down"),
    };
    writer.send(Message::Close(Some(bye))).await.expect("close");
    let mut payload = close::GOING_AWAY.to_be_bytes().to_vec();
    payload.extend_from_slice(b"server shutting down");
    assert_eq!(frames_written(&mut client, 1).await, vec![(CLOSE, payload)]);
    assert!(
        writer.send(Message::Text("late".into())).await.is_err(),
        "nothing after a close"
    );
    writer.close().await.expect("shut down");
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.expect("eof");
    assert!(rest.is_empty());
}
