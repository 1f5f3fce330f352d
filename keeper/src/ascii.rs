//! Renders records the way `ascii_runtime_measurements_<bank>` shows them:
//! `PCR template-digest template-name field field ...`, one line each.
//!
//! The PCR is printed `%2d`, the digest in lower-case hex, and every template
//! field after one space (an empty field leaves just the space). Fields are
//! rendered as the kernel's `field_show` does for the templates whose fields
//! are known here: `d-ng`-like digests as `algo:hex`, file names up to their
//! NUL, signatures and buffers in hex. Other templates are an error that names
//! the template.

use std::fmt;

use crate::record::{hex, Bank, Record};

/// How the kernel shows one template field in the ascii list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldShow {
    /// `algo:` then NUL then the digest: shown as `algo:` and the hex digest.
    DigestWithAlgo,
    /// A NUL-terminated string: shown up to the NUL.
    String,
    /// Raw bytes: shown in hex.
    Hex,
}

/// A record that cannot be rendered.
#[derive(Debug, PartialEq, Eq)]
pub struct RenderError {
    /// Template of the record.
    pub template: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "template {:?}: {}", self.template, self.reason)
    }
}

impl std::error::Error for RenderError {}

/// The fields of a template, by its name or, for a template without a name,
/// by its format string (`d-ng|n-ng|...`).
fn template_fields(template: &str) -> Option<Vec<FieldShow>> {
    let format = match template {
        "ima-ng" => "d-ng|n-ng",
        "ima-sig" => "d-ng|n-ng|sig",
        "ima-ngv2" => "d-ngv2|n-ng",
        "ima-sigv2" => "d-ngv2|n-ng|sig",
        "ima-buf" => "d-ng|n-ng|buf",
        "ima-modsig" => "d-ng|n-ng|sig|d-modsig|modsig",
        other => other,
    };
    format
        .split('|')
        .map(|field| match field {
            "d-ng" | "d-ngv2" | "d-modsig" => Some(FieldShow::DigestWithAlgo),
            "n-ng" => Some(FieldShow::String),
            "sig" | "buf" | "modsig" => Some(FieldShow::Hex),
            _ => None,
        })
        .collect()
}

/// Appends `record`'s ascii line for `bank` to `out`.
pub fn render(record: &Record, bank: Bank, out: &mut Vec<u8>) -> Result<(), RenderError> {
    let error = |reason: String| RenderError {
        template: record.template_name.clone(),
        reason,
    };
    let shows = template_fields(&record.template_name)
        .ok_or_else(|| error("no ascii rendering for this template".to_string()))?;
    let fields = split_fields(&record.template_data).map_err(error)?;
    if fields.len() != shows.len() {
        return Err(error(format!(
            "template data holds {} fields, the template has {}",
            fields.len(),
            shows.len()
        )));
    }
    let mut line = format!(
        "{:2} {} {}",
        record.pcr,
        hex(record.digest(bank)),
        record.template_name
    )
    .into_bytes();
    for (field, show) in fields.into_iter().zip(shows) {
        line.push(b' ');
        if !field.is_empty() {
            show_field(field, show, &mut line).map_err(error)?;
        }
    }
    line.push(b'\n');
    out.extend_from_slice(&line);
    Ok(())
}

/// Splits template data into its length-prefixed fields.
fn split_fields(mut data: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut fields = Vec::new();
    while !data.is_empty() {
        let (len, rest) = data
            .split_first_chunk::<4>()
            .ok_or_else(|| format!("field {} has a truncated length", fields.len()))?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > rest.len() {
            return Err(format!(
                "field {} claims {len} bytes, {} left",
                fields.len(),
                rest.len()
            ));
        }
        let (field, rest) = rest.split_at(len);
        fields.push(field);
        data = rest;
    }
    Ok(fields)
}

/// The bytes of a C string field up to its NUL (all of it if it has none).
fn up_to_nul(field: &[u8]) -> &[u8] {
    field.split(|&byte| byte == 0).next().unwrap_or(field)
}

/// Appends one non-empty field as the kernel's `IMA_SHOW_ASCII` does.
fn show_field(field: &[u8], show: FieldShow, out: &mut Vec<u8>) -> Result<(), String> {
    match show {
        FieldShow::String => out.extend_from_slice(up_to_nul(field)),
        FieldShow::Hex => out.extend_from_slice(hex(field).as_bytes()),
        FieldShow::DigestWithAlgo => {
            // "algo:" (or "type:algo:") NUL digest; the kernel prints the
            // prefix when there is one before the last ':', then the digest.
            let prefix = up_to_nul(field);
            let colon = prefix
                .iter()
                .rposition(|&byte| byte == b':')
                .ok_or("digest field has no \"algo:\" prefix")?;
            if colon > 0 {
                out.extend_from_slice(prefix);
            }
            let digest = field.get(colon + 2..).unwrap_or_default();
            out.extend_from_slice(hex(digest).as_bytes());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{digest_field, measurement, name_field, record, template_data};

    fn line(record: &Record, bank: Bank) -> String {
        let mut out = Vec::new();
        render(record, bank, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ima_ng_line() {
        let record = measurement(3);
        let file_digest = Bank::Sha256.hash(&[b"/usr/bin/prog0003"]);
        assert_eq!(
            line(&record, Bank::Sha256),
            format!(
                "10 {} ima-ng sha256:{} /usr/bin/prog0003\n",
                hex(record.digest(Bank::Sha256)),
                hex(&file_digest)
            )
        );
        assert!(line(&record, Bank::Sha1)
            .starts_with(&format!("10 {} ima-ng", hex(record.digest(Bank::Sha1)))));
    }

    #[test]
    fn ima_sig_with_and_without_signature() {
        let fields = [digest_field("sha1", &[0xaa; 20]), name_field("/bin/sh")];
        let signed = record(
            "ima-sig",
            template_data(&[&fields[0], &fields[1], &[0x03, 0x02, 0xff]]),
        );
        assert!(line(&signed, Bank::Sha1).ends_with(&format!(
            " ima-sig sha1:{} /bin/sh 0302ff\n",
            "aa".repeat(20)
        )));
        let unsigned = record("ima-sig", template_data(&[&fields[0], &fields[1], &[]]));
        assert!(line(&unsigned, Bank::Sha1).ends_with(" /bin/sh \n"));
    }

    #[test]
    fn pcr_is_padded_to_two_columns() {
        let mut record = measurement(1);
        record.pcr = 9;
        assert!(line(&record, Bank::Sha1).starts_with(" 9 "));
    }

    #[test]
    fn unknown_template_is_named() {
        let record = record("my-tmpl", template_data(&[b"x"]));
        let err = render(&record, Bank::Sha1, &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "template \"my-tmpl\": no ascii rendering for this template"
        );
    }

    #[test]
    fn malformed_fields_are_reported() {
        let mut record = measurement(1);
        record.template_data.truncate(10);
        let err = render(&record, Bank::Sha1, &mut Vec::new()).unwrap_err();
        assert!(err.reason.contains("field 0 claims 40 bytes"), "{err}");
    }
}
