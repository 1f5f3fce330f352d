// SPDX-License-Identifier: GPL-2.0-only
/*
 * What the Rust measurement list (ima_rs.rs) reads of a C
 * struct ima_template_entry, and how it writes one into the kexec buffer.
 * Built with the crate, under CONFIG_IMA_STAGING_RUST.
 */

#include <kunit/visibility.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include "../ima.h"

/**
 * ima_rs_entry_pcr - the PCR a record extends
 * @entry: the record
 *
 * Return: the PCR index.
 */
u32 ima_rs_entry_pcr(const struct ima_template_entry *entry)
{
	return entry->pcr;
}

/**
 * ima_rs_entry_digest - a record's template digest in IMA's algorithm
 * @entry: the record
 *
 * Return: ima_rs_digest_size() bytes, valid as long as the record.
 */
const u8 *ima_rs_entry_digest(const struct ima_template_entry *entry)
{
	return entry->digests[ima_hash_algo_idx].digest;
}

/**
 * ima_rs_digest_size - the size of a digest in IMA's algorithm
 *
 * Return: the size in bytes.
 */
size_t ima_rs_digest_size(void)
{
	return hash_digest_size[ima_hash_algo];
}

/**
 * ima_rs_entry_to_binary - write a record in the binary list format
 * @entry: the record
 * @buf: where to write it
 * @len: bytes available at @buf
 *
 * Used by the Rust list to fill the kexec buffer.
 *
 * Return: the bytes written, or -EINVAL unless the record takes fewer than
 * @len bytes (a seq_file counts a full buffer as overflowed).
 */
ssize_t ima_rs_entry_to_binary(const struct ima_template_entry *entry,
			       void *buf, size_t len)
{
	struct seq_file m = { .buf = buf, .size = len };

	ima_measurements_show_entry(&m, (struct ima_template_entry *)entry);
	if (seq_has_overflowed(&m))
		return -EINVAL;
	return m.count;
}

/**
 * ima_rs_test_entry - a record for the Rust list's KUnit tests
 * @pcr: its PCR
 * @fill: the value of every byte of its digests in IMA's algorithm and in
 *	SHA-1
 * @data_len: bytes of data in the first field of the current template
 *
 * Compiled in every build, so that it keeps compiling; it is static, and
 * unused, without KUnit.
 *
 * Return: the record, or NULL if out of memory.
 */
VISIBLE_IF_KUNIT __maybe_unused struct ima_template_entry *
ima_rs_test_entry(u32 pcr, u8 fill, u32 data_len)
{
	struct ima_template_desc *desc = ima_template_desc_current();
	struct ima_template_entry *entry;

	if (!desc->num_fields)
		return NULL;

	entry = kzalloc_flex(*entry, template_data, desc->num_fields);
	if (!entry)
		return NULL;

	entry->template_desc = desc;
	entry->digests = kzalloc_objs(*entry->digests,
				      NR_BANKS(ima_tpm_chip) + ima_extra_slots);
	entry->template_data[0].data = kzalloc(data_len, GFP_KERNEL);
	if (!entry->digests || !entry->template_data[0].data) {
		ima_free_template_entry(entry);
		return NULL;
	}

	memset(entry->digests[ima_hash_algo_idx].digest, fill,
	       hash_digest_size[ima_hash_algo]);
	/* The binary list and the kexec buffer show the SHA-1 digest. */
	memset(entry->digests[ima_sha1_idx].digest, fill, SHA1_DIGEST_SIZE);
	entry->template_data[0].len = data_len;
	/* Each field is written as its length and its data. */
	entry->template_data_len = desc->num_fields * sizeof(u32) + data_len;
	entry->pcr = pcr;
	return entry;
}
