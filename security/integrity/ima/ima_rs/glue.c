// SPDX-License-Identifier: GPL-2.0-only
/*
 * The C side of a record of the Rust measurement list (ima_rs.rs): its
 * layout, built from a C struct ima_template_entry when the record is added
 * or restored, what Rust reads of it, and the view of it that IMA's
 * formatting code is handed.
 * Built with the crate, under CONFIG_IMA_STAGING_RUST.
 */

#include <kunit/visibility.h>
#include <linux/once.h>
#include <linux/random.h>
#include <linux/seq_file.h>
#include <linux/siphash.h>
#include <linux/slab.h>
#include <linux/unaligned.h>
#include "../ima.h"

/*
 * Digest slots an entry can have: one per TPM bank, and SHA-1 and IMA's
 * algorithm when no bank has them (ima_init_crypto()).
 */
#define IMA_RS_SLOTS_MAX (TPM2_MAX_PCR_BANKS + 2)

/**
 * struct ima_rs_record - a measurement record of the Rust list
 * @desc: its template
 * @pcr: the PCR it extends
 * @template_data_len: the length of its template data in the binary list,
 *	the bytes its fields take at the end of @data
 * @data: the digest of each slot of ima_algo_array, of the slot's
 *	digest_size bytes, then each template field's length (u32, unaligned)
 *	and data
 *
 * One allocation holds everything the lists serve; an entry made by
 * ima_alloc_init_template() or restored from kexec is freed once copied.
 */
struct ima_rs_record {
	struct ima_template_desc *desc;
	u32 pcr;
	u32 template_data_len;
	u8 data[];
};

static unsigned int ima_rs_num_slots(void)
{
	return NR_BANKS(ima_tpm_chip) + ima_extra_slots;
}

/* The bytes of the digests at the start of a record's data. */
static size_t ima_rs_digests_size(void)
{
	unsigned int i;
	size_t size = 0;

	for (i = 0; i < ima_rs_num_slots(); i++)
		size += ima_algo_array[i].digest_size;
	return size;
}

/**
 * ima_rs_record_new - copy an entry into a record of the Rust list
 * @entry: the entry, left to its owner
 *
 * Return: the record, to be freed with ima_rs_record_free(), or NULL if out
 * of memory.
 */
struct ima_rs_record *ima_rs_record_new(const struct ima_template_entry *entry)
{
	const struct ima_template_desc *desc = entry->template_desc;
	size_t size = ima_rs_digests_size();
	struct ima_rs_record *r;
	unsigned int i;
	u8 *p;

	for (i = 0; i < desc->num_fields; i++)
		size += sizeof(u32) + entry->template_data[i].len;

	r = kmalloc(struct_size(r, data, size), GFP_KERNEL);
	if (!r)
		return NULL;

	r->desc = entry->template_desc;
	r->pcr = entry->pcr;
	r->template_data_len = entry->template_data_len;
	p = r->data;
	for (i = 0; i < ima_rs_num_slots(); i++) {
		memcpy(p, entry->digests[i].digest,
		       ima_algo_array[i].digest_size);
		p += ima_algo_array[i].digest_size;
	}
	for (i = 0; i < desc->num_fields; i++) {
		const struct ima_field_data *field = &entry->template_data[i];

		put_unaligned(field->len, (u32 *)p);
		p += sizeof(u32);
		memcpy(p, field->data, field->len);
		p += field->len;
	}
	return r;
}

/**
 * ima_rs_record_free - free a record
 * @r: the record, or NULL
 */
void ima_rs_record_free(struct ima_rs_record *r)
{
	kfree(r);
}

/**
 * ima_rs_record_free_rcu - free a record after an RCU grace period
 * @r: the record, no longer reachable by a new reader
 *
 * Returns at once: the record is freed, in a batch with others, once every
 * reader that could have found it has left its RCU read-side critical
 * section. Might sleep.
 */
void ima_rs_record_free_rcu(struct ima_rs_record *r)
{
	kvfree_rcu_mightsleep(r);
}

/**
 * ima_rs_record_pcr - the PCR a record extends
 * @r: the record
 *
 * Return: the PCR index.
 */
u32 ima_rs_record_pcr(const struct ima_rs_record *r)
{
	return r->pcr;
}

/* The digest of a record in the slot @idx of ima_algo_array. */
static const u8 *ima_rs_record_slot(const struct ima_rs_record *r,
				    unsigned int idx)
{
	const u8 *p = r->data;
	unsigned int i;

	for (i = 0; i < idx; i++)
		p += ima_algo_array[i].digest_size;
	return p;
}

/**
 * ima_rs_record_digest - a record's template digest in IMA's algorithm
 * @r: the record
 *
 * Return: ima_rs_digest_size() bytes, valid as long as the record.
 */
const u8 *ima_rs_record_digest(const struct ima_rs_record *r)
{
	return ima_rs_record_slot(r, ima_hash_algo_idx);
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

/* The seed of the digest table's hash, drawn at its first use. */
static hsiphash_key_t ima_rs_key_seed;

/**
 * ima_rs_key_hash - hash a key of the Rust digest table
 * @key: the key's bytes
 * @len: their number
 *
 * hsiphash, the kernel's hash table function, keyed with a secret seed,
 * so that whoever chooses the measured files cannot choose template
 * digests that fall into one bucket. The hash stays in the kernel.
 *
 * Return: the hash.
 */
u32 ima_rs_key_hash(const void *key, size_t len)
{
	get_random_once(&ima_rs_key_seed, sizeof(ima_rs_key_seed));
	return hsiphash(key, len, &ima_rs_key_seed);
}

/**
 * ima_rs_record_binary_size - bytes of a record in the binary list
 * @r: the record
 *
 * Return: the size in bytes, as in the kexec buffer.
 */
size_t ima_rs_record_binary_size(const struct ima_rs_record *r)
{
	const struct ima_template_entry e = {
		.template_desc = r->desc,
		.template_data_len = r->template_data_len,
	};

	return ima_entry_binary_size(&e);
}

/*
 * ima_rs_record_show_binary - write a record in the binary list format
 * @m: the seq_file written
 * @r: the record
 * @algo_idx: the slot of the digest written (ima_measurements_algo_idx())
 *
 * The binary list holds each template field as its length and data, as the
 * record does, except for the "ima" template and with ima_canonical_fmt:
 * then the fields are written in another form or the numbers converted.
 * Otherwise the record is written into the seq_file's buffer at once, with
 * one check of the room left: the bytes that ima_measurements_show_entry()
 * writes field by field. This runs once per record read.
 *
 * Return: whether the record was handled (written, or the buffer marked
 * overflowed); if not, it is to be formatted by
 * ima_measurements_show_entry().
 */
static bool ima_rs_record_show_binary(struct seq_file *m,
				      const struct ima_rs_record *r,
				      unsigned int algo_idx)
{
	const struct ima_template_desc *desc = r->desc;
	const char *name = desc->name[0] ? desc->name : desc->fmt;
	u32 digest_size = ima_algo_array[algo_idx].digest_size;
	const u8 *fields = r->data + ima_rs_digests_size();
	u32 namelen;
	size_t size;
	char *p;

	if (ima_canonical_fmt || !strcmp(name, IMA_TEMPLATE_IMA_NAME))
		return false;

	namelen = strlen(name);
	size = sizeof(r->pcr) + digest_size + sizeof(namelen) + namelen +
	       sizeof(r->template_data_len) + r->template_data_len;
	/* As seq_write(): a record that fills the buffer overflows it. */
	if (seq_get_buf(m, &p) <= size) {
		seq_commit(m, -1);
		return true;
	}
	put_unaligned(r->pcr, (u32 *)p);
	p += sizeof(r->pcr);
	memcpy(p, ima_rs_record_slot(r, algo_idx), digest_size);
	p += digest_size;
	put_unaligned(namelen, (u32 *)p);
	p += sizeof(namelen);
	memcpy(p, name, namelen);
	p += namelen;
	put_unaligned(r->template_data_len, (u32 *)p);
	p += sizeof(r->template_data_len);
	memcpy(p, fields, r->template_data_len);
	seq_commit(m, size);
	return true;
}

/*
 * ima_rs_record_show - hand a record to IMA's formatting code
 * @m: the seq_file written
 * @r: the record
 * @show: the formatting
 *
 * The binary format is written straight from the record when it can be
 * (ima_rs_record_show_binary()). Otherwise @show gets a C entry on the
 * stack whose fields point into @r, and whose digest array holds, in its
 * slot for the file's algorithm (ima_measurements_algo_idx()), the one
 * digest that the formatting reads. The view is set field by field, not
 * zeroed first (CONFIG_INIT_STACK_ALL_ZERO would zero every local): this
 * runs once per record read, and the bytes left unset are never read.
 *
 * Return: what @show returns.
 */
static int ima_rs_record_show(struct seq_file *m,
			      const struct ima_rs_record *r,
			      int (*show)(struct seq_file *m,
					  struct ima_template_entry *e))
{
	union {
		u8 bytes[struct_size_t(struct ima_template_entry, template_data,
				       IMA_TEMPLATE_NUM_FIELDS_MAX)];
		struct ima_template_entry entry;
	} view_u __uninitialized;
	struct ima_template_entry *view = &view_u.entry;
	struct tpm_digest digests[IMA_RS_SLOTS_MAX] __uninitialized;
	unsigned int algo_idx = ima_measurements_algo_idx(m);
	const u8 *p;
	unsigned int i;

	if (show == ima_measurements_show_entry &&
	    ima_rs_record_show_binary(m, r, algo_idx))
		return 0;

	if (WARN_ON_ONCE(ima_rs_num_slots() > IMA_RS_SLOTS_MAX ||
			 r->desc->num_fields > IMA_TEMPLATE_NUM_FIELDS_MAX))
		return -EINVAL;

	memcpy(digests[algo_idx].digest, ima_rs_record_slot(r, algo_idx),
	       ima_algo_array[algo_idx].digest_size);
	p = r->data + ima_rs_digests_size();
	for (i = 0; i < r->desc->num_fields; i++) {
		view->template_data[i].len = get_unaligned((const u32 *)p);
		p += sizeof(u32);
		view->template_data[i].data = (u8 *)p;
		p += view->template_data[i].len;
	}
	view->pcr = r->pcr;
	view->digests = digests;
	view->template_desc = r->desc;
	view->template_data_len = r->template_data_len;
	return show(m, view);
}

/**
 * ima_list_seq_show - format the record of a cursor
 * @m: the seq_file written
 * @v: a cursor of the Rust list
 * @show: the formatting
 *
 * Return: what @show returns, or SEQ_SKIP for a record that a delete has
 * taken out of the list since the cursor reached it.
 */
int ima_list_seq_show(struct seq_file *m, void *v,
		      int (*show)(struct seq_file *m,
				  struct ima_template_entry *e))
{
	const struct ima_rs_record *r = ima_rs_cursor_record(v);

	if (!r)
		return SEQ_SKIP;
	return ima_rs_record_show(m, r, show);
}

/**
 * ima_rs_record_to_binary - write a record in the binary list format
 * @r: the record
 * @buf: where to write it
 * @len: bytes available at @buf
 *
 * Used by the Rust list to fill the kexec buffer.
 *
 * Return: the bytes written, or -EINVAL unless the record takes fewer than
 * @len bytes (a seq_file counts a full buffer as overflowed).
 */
ssize_t ima_rs_record_to_binary(const struct ima_rs_record *r, void *buf,
				size_t len)
{
	struct seq_file m = { .buf = buf, .size = len };

	if (ima_rs_record_show(&m, r, ima_measurements_show_entry) < 0 ||
	    seq_has_overflowed(&m))
		return -EINVAL;
	return m.count;
}

/**
 * ima_rs_test_entry - an entry for the Rust list's KUnit tests
 * @pcr: its PCR
 * @fill: the value of every byte of its digests in IMA's algorithm and in
 *	SHA-1
 * @data_len: bytes of data in the first field of the current template
 *
 * Compiled in every build, so that it keeps compiling; it is static, and
 * unused, without KUnit.
 *
 * Return: the entry, or NULL if out of memory.
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
