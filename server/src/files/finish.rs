//! The end of an upload: its parts joined into `files/ID`, its type
//! sniffed from the bytes and checked against the site's allow-list, an
//! image's metadata (EXIF, GPS, XMP, comments) stripped and its size
//! read, a thumbnail made in the background. A file refused here leaves
//! nothing behind: its parts and its row go.

use super::Files;
use super::kinds::{self, SNIFF_BYTES};
use super::upload::internal;
use crate::error::ApiError;
use crate::metrics::add;
use crate::state::AppState;
use crate::store::{Completed, FileRow, now_ms};
use axum::http::StatusCode;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use image::ImageDecoder;
use img_parts::{Bytes as PartBytes, ImageEXIF};
use natter_shared::{ErrorCode, FileId};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

/// Images larger than this (pixels) are stored but get no thumbnail.
const MAX_THUMB_SOURCE_PIXELS: u64 = 50_000_000;

/// The most memory one image's decoding may take.
const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;
/// The longest side of a thumbnail.
pub const THUMB_SIDE: u32 = 320;

/// Joins, checks and stores a fully received upload.
pub async fn finish(state: &AppState, file: &FileRow) -> Result<Completed, ApiError> {
    let files = &state.files;
    let Some(_finishing) = files.begin_finish(&file.id) else {
        return Err(ApiError::client(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            "this upload is being finished; ask for it again in a moment",
        ));
    };
    let parts = chain(files, &file.id, file.length).await?;
    let head = read_head(files, &parts).await?;
    let mime = kinds::sniff(&head);
    let allowed = site_types(state, file).await?;
    if !kinds::allowed(&mime, &allowed) {
        discard(state, &file.id).await;
        add(&state.metrics.uploads_refused, 1);
        return Err(ApiError::client(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::FileTypeRefused,
            format!("files of type {mime} are not accepted here"),
        ));
    }
    let done = if kinds::raster(&mime) {
        let bytes = read_all(files, &parts, file.length).await?;
        let cleaned = tokio::task::spawn_blocking(move || clean_image(bytes))
            .await
            .map_err(|e| internal(&e))?;
        let Some(image) = cleaned else {
            discard(state, &file.id).await;
            add(&state.metrics.uploads_refused, 1);
            return Err(ApiError::client(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::FileInvalid,
                format!("the {mime} image could not be read"),
            ));
        };
        let size = image.bytes.len() as u64;
        let thumb = u64::from(image.width) * u64::from(image.height) <= MAX_THUMB_SOURCE_PIXELS;
        files
            .store
            .put(
                &Files::original(&file.id),
                PutPayload::from(image.bytes.clone()),
            )
            .await
            .map_err(|e| internal(&e))?;
        if thumb {
            spawn_thumbnail(files.clone(), file.id.clone(), image.bytes);
        }
        Completed {
            mime,
            size,
            width: Some(image.width),
            height: Some(image.height),
            thumb,
        }
    } else {
        copy_parts(files, &parts, &Files::original(&file.id)).await?;
        Completed {
            mime,
            size: file.length,
            width: None,
            height: None,
            thumb: false,
        }
    };
    state.store.complete_file(&file.id, &done, now_ms()).await?;
    remove_parts(files, &file.id).await;
    add(&state.metrics.files_stored, 1);
    add(&state.metrics.file_bytes_stored, done.size);
    Ok(done)
}

/// The allow-list in force for the file's site.
async fn site_types(state: &AppState, file: &FileRow) -> Result<Vec<String>, ApiError> {
    match state.store.site(&file.site).await? {
        Some(site) => Ok(super::site_types(state, &site)),
        None => Ok(Vec::new()),
    }
}

/// The parts that make up bytes `0..length`, in order. Parts stored by a
/// request whose offset move lost are skipped.
async fn chain(files: &Files, id: &FileId, length: u64) -> Result<Vec<Key>, ApiError> {
    let mut parts: Vec<(u64, u64, Key)> = files
        .store
        .list(Some(&Files::parts(id)))
        .map_ok(|meta| meta.location)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| internal(&e))?
        .into_iter()
        .filter_map(|key| {
            let name = key.filename()?.to_string();
            let (a, b) = name.split_once('-')?;
            Some((a.parse().ok()?, b.parse().ok()?, key))
        })
        .collect();
    parts.sort_by(|x, y| x.0.cmp(&y.0).then(y.1.cmp(&x.1)));
    let mut out = Vec::new();
    let mut at = 0;
    while at < length {
        let Some((_, end, key)) = parts.iter().find(|(s, e, _)| *s == at && *e <= length) else {
            return Err(internal(&format!("upload {id} lacks the part at {at}")));
        };
        out.push(key.clone());
        at = *end;
    }
    Ok(out)
}

async fn read_head(files: &Files, parts: &[Key]) -> Result<Vec<u8>, ApiError> {
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    for key in parts {
        if head.len() >= SNIFF_BYTES {
            break;
        }
        let bytes = files.store.get(key).await.map_err(|e| internal(&e))?;
        let bytes = bytes.bytes().await.map_err(|e| internal(&e))?;
        let take = (SNIFF_BYTES - head.len()).min(bytes.len());
        head.extend_from_slice(&bytes[..take]);
    }
    Ok(head)
}

async fn read_all(files: &Files, parts: &[Key], length: u64) -> Result<Bytes, ApiError> {
    let mut all = BytesMut::with_capacity(usize::try_from(length).unwrap_or(0));
    for key in parts {
        let got = files.store.get(key).await.map_err(|e| internal(&e))?;
        all.extend_from_slice(&got.bytes().await.map_err(|e| internal(&e))?);
    }
    Ok(all.freeze())
}

/// Streams the parts into one object, written whole or not at all.
async fn copy_parts(files: &Files, parts: &[Key], to: &Key) -> Result<(), ApiError> {
    let upload = files
        .store
        .put_multipart(to)
        .await
        .map_err(|e| internal(&e))?;
    let mut writer = WriteMultipart::new(upload);
    for key in parts {
        let got = files.store.get(key).await.map_err(|e| internal(&e))?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.try_next().await.map_err(|e| internal(&e))? {
            writer.write(&chunk);
        }
    }
    match writer.finish().await {
        Ok(_) => Ok(()),
        Err(e) => Err(internal(&e)),
    }
}

/// Deletes an upload's parts (best effort: the sweep retries).
pub(super) async fn remove_parts(files: &Files, id: &FileId) {
    let keys = files
        .store
        .list(Some(&Files::parts(id)))
        .map_ok(|m| m.location)
        .boxed();
    let deleted = files.store.delete_stream(keys);
    if let Err(err) = deleted.try_collect::<Vec<_>>().await {
        tracing::warn!(file = %id, error = %err, "an upload's parts were not all deleted");
    }
}

/// Forgets a refused upload: its parts and its row.
async fn discard(state: &AppState, id: &FileId) {
    remove_parts(&state.files, id).await;
    if let Err(err) = state.store.delete_file(id).await {
        tracing::warn!(file = %id, error = %err, "a refused upload's row stayed");
    }
}

/// An image ready to store: its bytes without metadata, and its size as
/// shown (after its orientation is applied).
struct CleanImage {
    bytes: Bytes,
    width: u32,
    height: u32,
}

/// Strips metadata, losslessly where the orientation needs no turning
/// (JPEG segments APP1 and APP3–APP15 and comments; PNG text, time and
/// EXIF chunks; WebP EXIF and XMP); a JPEG that EXIF turns is turned and
/// re-encoded instead, so it shows the right way up without its EXIF.
/// `None` when the bytes do not decode as the image they claim to be.
fn clean_image(bytes: Bytes) -> Option<CleanImage> {
    let reader = image::ImageReader::new(std::io::Cursor::new(&bytes[..]))
        .with_guessed_format()
        .ok()?;
    let format = reader.format()?;
    let mut decoder = reader.into_decoder().ok()?;
    let (w, h) = decoder.dimensions();
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    // Turning decodes the whole image: only one small enough to decode
    // within bounded memory (its header names its size; a few bytes can
    // claim billions of pixels). A larger one keeps its pixels as they
    // are, its metadata stripped like any other's.
    let turnable = u64::from(w) * u64::from(h) <= MAX_THUMB_SOURCE_PIXELS;
    if orientation == image::metadata::Orientation::NoTransforms || !turnable {
        drop(decoder);
    } else {
        let mut limits = image::Limits::default();
        limits.max_alloc = Some(MAX_DECODE_BYTES);
        decoder.set_limits(limits).ok()?;
        let mut img = image::DynamicImage::from_decoder(decoder).ok()?;
        img.apply_orientation(orientation);
        let (width, height) = (img.width(), img.height());
        let mut out = Vec::new();
        let rgb = img.to_rgb8();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&rgb)
            .ok()?;
        return Some(CleanImage {
            bytes: out.into(),
            width,
            height,
        });
    }
    let stripped = match format {
        image::ImageFormat::Jpeg => {
            let mut jpeg =
                img_parts::jpeg::Jpeg::from_bytes(PartBytes::from(bytes.to_vec())).ok()?;
            for marker in (0xE1..=0xEF).filter(|m| *m != 0xE2).chain([0xFE]) {
                jpeg.remove_segments_by_marker(marker);
            }
            Bytes::from(jpeg.encoder().bytes().to_vec())
        }
        image::ImageFormat::Png => {
            let mut png = img_parts::png::Png::from_bytes(PartBytes::from(bytes.to_vec())).ok()?;
            for kind in [*b"eXIf", *b"tEXt", *b"zTXt", *b"iTXt", *b"tIME"] {
                png.remove_chunks_by_type(kind);
            }
            Bytes::from(png.encoder().bytes().to_vec())
        }
        image::ImageFormat::WebP => {
            let mut webp =
                img_parts::webp::WebP::from_bytes(PartBytes::from(bytes.to_vec())).ok()?;
            webp.set_exif(None);
            webp.remove_chunks_by_id(*b"XMP ");
            Bytes::from(webp.encoder().bytes().to_vec())
        }
        // GIF carries no EXIF.
        _ => bytes,
    };
    Some(CleanImage {
        bytes: stripped,
        width: w,
        height: h,
    })
}

/// Makes the thumbnail in the background: until it is stored, the
/// thumbnail link serves the image itself.
fn spawn_thumbnail(files: Files, id: FileId, bytes: Bytes) {
    tokio::spawn(async move {
        let made = tokio::task::spawn_blocking(move || thumbnail(&bytes)).await;
        match made {
            Ok(Some(thumb)) => {
                if let Err(err) = files
                    .store
                    .put(&Files::thumb(&id), PutPayload::from(thumb))
                    .await
                {
                    tracing::warn!(file = %id, error = %err, "thumbnail not stored");
                }
            }
            _ => tracing::warn!(file = %id, "no thumbnail could be made"),
        }
    });
}

/// A JPEG (or PNG, for images with transparency) at most
/// [`THUMB_SIDE`] on its longer side.
fn thumbnail(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let img = reader.decode().ok()?;
    // Never larger than the image itself.
    let small = if img.width() <= THUMB_SIDE && img.height() <= THUMB_SIDE {
        img
    } else {
        img.thumbnail(THUMB_SIDE, THUMB_SIDE)
    };
    let mut out = std::io::Cursor::new(Vec::new());
    if small.color().has_alpha() {
        small.write_to(&mut out, image::ImageFormat::Png).ok()?;
    } else {
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
            .encode_image(&small.to_rgb8())
            .ok()?;
    }
    Some(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 40×20 JPEG carrying `exif`.
    fn jpeg(exif: &'static [u8]) -> img_parts::jpeg::Jpeg {
        let img = image::RgbImage::from_pixel(40, 20, image::Rgb([200, 10, 10]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        let mut jpeg = img_parts::jpeg::Jpeg::from_bytes(PartBytes::from(out)).unwrap();
        jpeg.set_exif(Some(PartBytes::from_static(exif)));
        jpeg
    }

    fn jpeg_with_exif() -> Bytes {
        // An EXIF block naming a place (no orientation entry).
        let mut jpeg = jpeg(b"MM\0*\0\0\0\x08\0\0GPS 52.52N 13.40E");
        jpeg.segments_mut().insert(
            1,
            img_parts::jpeg::JpegSegment::new_with_contents(
                0xFE,
                PartBytes::from_static(b"shot at home"),
            ),
        );
        Bytes::from(jpeg.encoder().bytes().to_vec())
    }

    #[test]
    fn jpeg_metadata_is_stripped_and_the_size_read() {
        let raw = jpeg_with_exif();
        assert!(raw.windows(3).any(|w| w == b"GPS"));
        let clean = clean_image(raw).unwrap();
        assert_eq!((clean.width, clean.height), (40, 20));
        assert!(!clean.bytes.windows(3).any(|w| w == b"GPS"));
        assert!(!clean.bytes.windows(4).any(|w| w == b"home"));
        let thumb = thumbnail(&clean.bytes).unwrap();
        let t = image::load_from_memory(&thumb).unwrap();
        assert_eq!(
            (t.width(), t.height()),
            (40, 20),
            "small images stay their size"
        );
    }

    /// A 40×20 JPEG whose EXIF says to turn it a quarter clockwise.
    fn jpeg_turned() -> Vec<u8> {
        // Big-endian TIFF, one IFD entry: Orientation (0x0112), SHORT, 6.
        jpeg(b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0")
            .encoder()
            .bytes()
            .to_vec()
    }

    #[test]
    fn a_jpeg_exif_turns_is_turned_unless_it_is_too_big_to_decode() {
        let clean = clean_image(Bytes::from(jpeg_turned())).unwrap();
        assert_eq!((clean.width, clean.height), (20, 40), "turned");
        let shown = image::load_from_memory(&clean.bytes).unwrap();
        assert_eq!((shown.width(), shown.height()), (20, 40));

        // The same bytes, their header claiming 60,000 × 60,000 pixels:
        // nothing is decoded, the metadata goes, the claim is the size.
        let mut huge = jpeg_turned();
        let sof = huge
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("a baseline JPEG");
        huge[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
        let clean = clean_image(Bytes::from(huge)).expect("kept, not decoded");
        assert_eq!((clean.width, clean.height), (60_000, 60_000));
        assert!(
            !clean.bytes.windows(4).any(|w| w == b"MM\0*"),
            "no EXIF left"
        );
    }

    #[test]
    fn broken_images_are_refused_and_big_ones_get_small_thumbnails() {
        assert!(clean_image(Bytes::from_static(b"\x89PNG\r\n\x1a\nnot really")).is_none());
        let img = image::RgbaImage::from_pixel(1000, 500, image::Rgba([0, 0, 0, 100]));
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let thumb = thumbnail(png.get_ref()).unwrap();
        let t = image::load_from_memory(&thumb).unwrap();
        assert_eq!((t.width(), t.height()), (320, 160));
        assert!(t.color().has_alpha());
    }
}
