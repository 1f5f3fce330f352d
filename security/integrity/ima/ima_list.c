// SPDX-License-Identifier: GPL-2.0-only
/*
 * Copyright (C) 2005,2006,2007,2008 IBM Corporation
 *
 * Authors:
 * Serge Hallyn <serue@us.ibm.com>
 * Reiner Sailer <sailer@watson.ibm.com>
 * Mimi Zohar <zohar@us.ibm.com>
 * Kylene Hall <kjhall@us.ibm.com>
 *
 * File: ima_list.c
 *       The C implementation of the measurement list interface declared in
 *       ima.h: the current and the staged list with their hash table and
 *       counters, staging and deletion, the open mediation of the
 *       measurement files and the kexec serialization of the lists.
 */

#include <linux/rculist.h>
#include <linux/sched/task.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include "ima.h"

/*
 * Requests:
 * 'A\n': stage the entire measurements list
 * 'D\n': delete all staged measurements
 * '[1, ULONG_MAX]\n' delete N measurements records
 */
#define STAGED_REQ_LENGTH 21

struct ima_queue_entry {
	struct hlist_node hnext;	/* place in hash collision list */
	struct list_head later;		/* place in ima_measurements list */
	struct ima_template_entry *entry;
};

static LIST_HEAD(ima_measurements);	/* list of all measurements */
static LIST_HEAD(ima_measurements_staged); /* list of staged measurements */
#ifdef CONFIG_IMA_KEXEC
static unsigned long binary_runtime_size[BINARY__LAST];
#else
static unsigned long binary_runtime_size[BINARY__LAST] = {
	[0 ... BINARY__LAST - 1] = ULONG_MAX
};
#endif

/* Total number of measurement list records since hard boot. */
static atomic_long_t ima_num_records[BINARY__LAST] = {
	[0 ... BINARY__LAST - 1] = ATOMIC_LONG_INIT(0)
};

/* Total number of violations since hard boot. */
static atomic_long_t ima_num_violations = ATOMIC_LONG_INIT(0);

/* key: inode (before secure-hashing a file) */
static struct hlist_head __rcu *ima_htable;

/* mutex protects atomicity of extending and staging measurement list
 * and extending the TPM PCR aggregate. Since tpm_extend can take
 * long (and the tpm driver uses a mutex), we can't use the spinlock.
 */
static DEFINE_MUTEX(ima_extend_list_mutex);

/*
 * Used internally by the kernel to suspend measurements.
 * Protected by ima_extend_list_mutex.
 */
static bool ima_measurements_suspended;

static DEFINE_MUTEX(ima_measure_mutex);
/*
 * The writer task may open more files for writing, counted in
 * measure_writer_extra_writes. The files are free again once every write
 * open has been released, in whatever task the release runs: a child that
 * inherited the file, a receiver of SCM_RIGHTS, a deferred fput().
 */
static long ima_measure_users;
static struct task_struct *measure_writer;
static long measure_writer_extra_writes;

/* Callers must call synchronize_rcu() and free the hash table. */
static struct hlist_head *ima_alloc_replace_htable(void)
{
	struct hlist_head *old_htable, *new_htable;

	/* Initializing to zeros is equivalent to call HLIST_HEAD_INIT. */
	new_htable = kzalloc_objs(struct hlist_head, IMA_MEASURE_HTABLE_SIZE);
	if (!new_htable)
		return ERR_PTR(-ENOMEM);

	old_htable = rcu_replace_pointer(ima_htable, new_htable,
					 lockdep_is_held(&ima_extend_list_mutex));

	return old_htable;
}

int __init ima_list_init(void)
{
	struct hlist_head *old_htable;

	mutex_lock(&ima_extend_list_mutex);
	old_htable = ima_alloc_replace_htable();
	mutex_unlock(&ima_extend_list_mutex);

	if (IS_ERR(old_htable))
		return PTR_ERR(old_htable);

	/* Synchronize_rcu() and kfree() not necessary, only for robustness. */
	synchronize_rcu();
	kfree(old_htable);
	return 0;
}

/* lookup up the digest value in the hash table, and return the entry */
static struct ima_queue_entry *ima_lookup_digest_entry(u8 *digest_value,
						       int pcr)
{
	struct ima_queue_entry *qe, *ret = NULL;
	struct hlist_head *htable;
	unsigned int key;
	int rc;

	key = ima_hash_key(digest_value);
	rcu_read_lock();
	htable = rcu_dereference(ima_htable);
	hlist_for_each_entry_rcu(qe, &htable[key], hnext) {
		rc = memcmp(qe->entry->digests[ima_hash_algo_idx].digest,
			    digest_value, hash_digest_size[ima_hash_algo]);
		if (rc == 0 && qe->entry->pcr == pcr) {
			ret = qe;
			break;
		}
	}
	rcu_read_unlock();
	return ret;
}

static void ima_update_binary_runtime_size(struct ima_template_entry *entry,
					   enum binary_lists binary_list)
{
	size_t size;

	if (binary_runtime_size[binary_list] == ULONG_MAX)
		return;

	size = ima_entry_binary_size(entry);
	binary_runtime_size[binary_list] =
		(binary_runtime_size[binary_list] < ULONG_MAX - size) ?
		binary_runtime_size[binary_list] + size : ULONG_MAX;
}

/* ima_list_add helper function:
 * - Add template entry to the measurement list and hash table, for
 *   all entries except those carried across kexec.
 *
 * (Called with ima_extend_list_mutex held.)
 */
static int ima_add_digest_entry(struct ima_template_entry *entry,
				bool update_htable)
{
	struct ima_queue_entry *qe;
	struct hlist_head *htable;
	unsigned int key;

	qe = kmalloc_obj(*qe);
	if (!qe) {
		pr_err("OUT OF MEMORY ERROR creating queue entry\n");
		return -ENOMEM;
	}
	qe->entry = entry;

	INIT_LIST_HEAD(&qe->later);
	list_add_tail_rcu(&qe->later, &ima_measurements);

	htable = rcu_dereference_protected(ima_htable,
					   lockdep_is_held(&ima_extend_list_mutex));

	atomic_long_inc(&ima_num_records[BINARY]);
	atomic_long_inc(&ima_num_records[BINARY_FULL]);

	if (update_htable) {
		key = ima_hash_key(entry->digests[ima_hash_algo_idx].digest);
		hlist_add_head_rcu(&qe->hnext, &htable[key]);
	}

	ima_update_binary_runtime_size(entry, BINARY);
	ima_update_binary_runtime_size(entry, BINARY_FULL);

	return 0;
}

long ima_list_num_records(enum binary_lists list)
{
	return atomic_long_read(&ima_num_records[list]);
}

unsigned long ima_list_binary_size(enum binary_lists list)
{
	unsigned long val;

	mutex_lock(&ima_extend_list_mutex);
	val = binary_runtime_size[list];
	mutex_unlock(&ima_extend_list_mutex);
	return val;
}

void ima_list_count_violation(void)
{
	atomic_long_inc(&ima_num_violations);
}

long ima_list_violations(void)
{
	return atomic_long_read(&ima_num_violations);
}

int ima_list_add(struct ima_template_entry *entry, bool violation,
		 int *tpm_result)
{
	u8 *digest = entry->digests[ima_hash_algo_idx].digest;
	int result = 0;

	mutex_lock(&ima_extend_list_mutex);

	/*
	 * Avoid appending to the measurement log when the TPM subsystem has
	 * been shut down while preparing for system reboot.
	 */
	if (ima_measurements_suspended) {
		result = -ENODEV;
		goto out;
	}

	if (!violation && !IS_ENABLED(CONFIG_IMA_DISABLE_HTABLE)) {
		if (ima_lookup_digest_entry(digest, entry->pcr)) {
			result = -EEXIST;
			goto out;
		}
	}

	result = ima_add_digest_entry(entry,
				      !IS_ENABLED(CONFIG_IMA_DISABLE_HTABLE));
	if (result < 0)
		goto out;

	*tpm_result = ima_extend_pcr(entry, violation);
out:
	mutex_unlock(&ima_extend_list_mutex);
	return result;
}

/**
 * ima_queue_stage - Stage all measurements
 *
 * If the staged measurements list is empty, the current measurements list is
 * not empty, and measurement is not suspended, move the measurements from the
 * current list to the staged one, and update the number of records and binary
 * run-time size accordingly.
 *
 * Do not allow staging after measurement is suspended, so that dumping
 * measurements can be done in a lockless way.
 *
 * Return: Zero on success, a negative value otherwise.
 */
static int ima_queue_stage(void)
{
	int ret = 0;

	mutex_lock(&ima_extend_list_mutex);
	if (!list_empty(&ima_measurements_staged)) {
		ret = -EEXIST;
		goto out_unlock;
	}

	if (list_empty(&ima_measurements)) {
		ret = -ENOENT;
		goto out_unlock;
	}

	if (ima_measurements_suspended) {
		ret = -EACCES;
		goto out_unlock;
	}

	list_replace(&ima_measurements, &ima_measurements_staged);
	INIT_LIST_HEAD(&ima_measurements);

	atomic_long_set(&ima_num_records[BINARY_STAGED],
			atomic_long_read(&ima_num_records[BINARY]));
	atomic_long_set(&ima_num_records[BINARY], 0);

	if (IS_ENABLED(CONFIG_IMA_KEXEC)) {
		binary_runtime_size[BINARY_STAGED] =
					binary_runtime_size[BINARY];
		binary_runtime_size[BINARY] = 0;
	}
out_unlock:
	mutex_unlock(&ima_extend_list_mutex);
	return ret;
}

static void ima_queue_delete(struct list_head *head, bool flush_htable);

/**
 * ima_queue_staged_delete_all - Delete staged measurements
 * @flush_htable: Whether the hash table is flushed (ima_flush_htable)
 *
 * Move staged measurements to a temporary list, ima_measurements_trim, update
 * the number of records and the binary run-time size accordingly. Finally,
 * delete measurements in the temporary list.
 *
 * Refuse to delete staged measurements if measurement is suspended, so that
 * dump can be done in a lockless way and user space is notified about staged
 * measurements being carried over to the secondary kernel, so that it does not
 * save them twice.
 *
 * Return: Zero on success, a negative value otherwise.
 */
static int ima_queue_staged_delete_all(bool flush_htable)
{
	struct hlist_head *old_queue = NULL;
	LIST_HEAD(ima_measurements_trim);

	mutex_lock(&ima_extend_list_mutex);
	if (list_empty(&ima_measurements_staged)) {
		mutex_unlock(&ima_extend_list_mutex);
		return -ENOENT;
	}

	if (ima_measurements_suspended) {
		mutex_unlock(&ima_extend_list_mutex);
		return -ESTALE;
	}

	list_replace(&ima_measurements_staged, &ima_measurements_trim);
	INIT_LIST_HEAD(&ima_measurements_staged);

	atomic_long_set(&ima_num_records[BINARY_STAGED], 0);

	if (IS_ENABLED(CONFIG_IMA_KEXEC))
		binary_runtime_size[BINARY_STAGED] = 0;

	if (flush_htable) {
		old_queue = ima_alloc_replace_htable();
		if (IS_ERR(old_queue)) {
			mutex_unlock(&ima_extend_list_mutex);
			return PTR_ERR(old_queue);
		}
	}

	mutex_unlock(&ima_extend_list_mutex);

	if (flush_htable) {
		synchronize_rcu();
		kfree(old_queue);
	}

	ima_queue_delete(&ima_measurements_trim, flush_htable);
	return 0;
}

/**
 * ima_queue_delete_partial - Delete current measurements
 * @req_value: Number of measurements to delete
 *
 * Delete the requested number of measurements from the current measurements
 * list, and update the number of records and the binary run-time size
 * accordingly.
 *
 * Refuse to delete current measurements if measurement is suspended, so that
 * dump can be done in a lockless way and user space is notified about current
 * measurements being carried over to the secondary kernel, so that it does not
 * save them twice.
 *
 * Return: Zero on success, a negative value otherwise.
 */
static int ima_queue_delete_partial(unsigned long req_value)
{
	unsigned long req_value_copy = req_value;
	unsigned long size_to_remove = 0, num_to_remove = 0;
	LIST_HEAD(ima_measurements_trim);
	struct ima_queue_entry *qe;
	int ret = 0;

	/*
	 * list_for_each_entry_rcu() without rcu_read_lock() is fine because
	 * only list append can happen concurrently. No list replace due to the
	 * staging/delete writers mutual exclusion.
	 */
	list_for_each_entry_rcu(qe, &ima_measurements, later, true) {
		size_to_remove += ima_entry_binary_size(qe->entry);
		num_to_remove++;

		if (--req_value_copy == 0)
			break;
	}

	/* Not enough records to delete. */
	if (req_value_copy > 0)
		return -ENOENT;

	mutex_lock(&ima_extend_list_mutex);
	if (ima_measurements_suspended) {
		mutex_unlock(&ima_extend_list_mutex);
		return -ESTALE;
	}

	/*
	 * qe remains valid because ima_list_write() is never called while
	 * another runs.
	 */
	__list_cut_position(&ima_measurements_trim, &ima_measurements,
			    &qe->later);

	atomic_long_sub(num_to_remove, &ima_num_records[BINARY]);

	if (IS_ENABLED(CONFIG_IMA_KEXEC))
		binary_runtime_size[BINARY] -= size_to_remove;

	mutex_unlock(&ima_extend_list_mutex);

	ima_queue_delete(&ima_measurements_trim, false);
	return ret;
}

/**
 * ima_queue_delete - Delete measurements
 * @head: List head measurements are deleted from
 * @flush_htable: Whether or not the hash table is being flushed
 *
 * Delete the measurements from the passed list head completely if the
 * hash table is not enabled or is being flushed, or partially (only the
 * template data), if the hash table is used.
 */
static void ima_queue_delete(struct list_head *head, bool flush_htable)
{
	struct ima_queue_entry *qe, *qe_tmp;
	unsigned int i;

	list_for_each_entry_safe(qe, qe_tmp, head, later) {
		/*
		 * Safe to free template_data here without synchronize_rcu()
		 * because the only htable reader, ima_lookup_digest_entry(),
		 * accesses only entry->digests, not template_data. If new
		 * htable readers are added that access template_data, a
		 * synchronize_rcu() is required here.
		 */
		for (i = 0; i < qe->entry->template_desc->num_fields; i++) {
			kfree(qe->entry->template_data[i].data);
			qe->entry->template_data[i].data = NULL;
			qe->entry->template_data[i].len = 0;
		}

		list_del(&qe->later);

		/* No leak if condition is false, referenced by ima_htable. */
		if (IS_ENABLED(CONFIG_IMA_DISABLE_HTABLE) || flush_htable) {
			kfree(qe->entry->digests);
			kfree(qe->entry);
			kfree(qe);
		}
	}
}

int ima_list_restore(struct ima_template_entry *entry)
{
	int result = 0;

	mutex_lock(&ima_extend_list_mutex);
	result = ima_add_digest_entry(entry, 0);
	mutex_unlock(&ima_extend_list_mutex);
	return result;
}

void ima_list_suspend(void)
{
	mutex_lock(&ima_extend_list_mutex);
	ima_measurements_suspended = true;
	mutex_unlock(&ima_extend_list_mutex);
}

static struct list_head *ima_list_head(bool staged)
{
	return staged ? &ima_measurements_staged : &ima_measurements;
}

void *ima_list_seq_start(bool staged, loff_t pos)
{
	struct ima_queue_entry *qe;

	list_for_each_entry_rcu(qe, ima_list_head(staged), later) {
		if (!pos--)
			return qe;
	}
	return NULL;
}

void *ima_list_seq_next(bool staged, void *v, loff_t pos)
{
	struct ima_queue_entry *qe = v;

	qe = list_entry_rcu(qe->later.next, struct ima_queue_entry, later);
	return (&qe->later == ima_list_head(staged)) ? NULL : qe;
}

int ima_list_seq_show(struct seq_file *m, void *v,
		      int (*show)(struct seq_file *m,
				  struct ima_template_entry *e))
{
	return show(m, ((struct ima_queue_entry *)v)->entry);
}

int ima_list_open_file(bool write)
{
	mutex_lock(&ima_measure_mutex);
	/* Overflow check. */
	if (!write && ima_measure_users == LONG_MAX) {
		mutex_unlock(&ima_measure_mutex);
		return -ENFILE;
	}

	/* Same writer can do additional writes or read/writes. */
	if (write && current == measure_writer) {
		measure_writer_extra_writes++;
		mutex_unlock(&ima_measure_mutex);
		return 0;
	}

	/*
	 * ima_measure_users: > 0 open readers
	 * ima_measure_users: == -1 open writer
	 */
	if ((write && ima_measure_users != 0) ||
	    (!write && ima_measure_users < 0)) {
		mutex_unlock(&ima_measure_mutex);
		return -EBUSY;
	}

	if (write) {
		ima_measure_users--;
		/* Held until the last write file is released. */
		measure_writer = get_task_struct(current);
	} else {
		ima_measure_users++;
	}
	mutex_unlock(&ima_measure_mutex);
	return 0;
}

void ima_list_release_file(bool write)
{
	mutex_lock(&ima_measure_mutex);
	/*
	 * Decrement additional writes or read/writes. The releasing task
	 * need not be the writer: write releases are counted, not matched.
	 */
	if (write && measure_writer_extra_writes != 0) {
		measure_writer_extra_writes--;
		mutex_unlock(&ima_measure_mutex);
		return;
	}
	if (write) {
		ima_measure_users++;
		put_task_struct(measure_writer);
		measure_writer = NULL;
	} else {
		ima_measure_users--;
	}
	mutex_unlock(&ima_measure_mutex);
}

ssize_t ima_list_write(const char __user *buf, size_t datalen, bool staged,
		       bool flush)
{
	char req[STAGED_REQ_LENGTH];
	unsigned long req_value;
	int ret;

	if (datalen < 2 || datalen > STAGED_REQ_LENGTH)
		return -EINVAL;

	if (copy_from_user(req, buf, datalen) != 0)
		return -EFAULT;

	if (req[datalen - 1] != '\n')
		return -EINVAL;

	req[datalen - 1] = '\0';

	switch (req[0]) {
	case 'A':
		if (datalen != 2 || !staged)
			return -EINVAL;

		ret = ima_queue_stage();
		break;
	case 'D':
		if (datalen != 2 || !staged)
			return -EINVAL;

		ret = ima_queue_staged_delete_all(flush);
		break;
	default:
		if (staged)
			return -EINVAL;

		if (flush) {
			pr_debug("Deleting staged N measurements not supported when flushing the hash table is requested\n");
			return -EINVAL;
		}

		ret = kstrtoul(req, 10, &req_value);
		if (ret < 0)
			return ret;

		if (req_value == 0) {
			pr_debug("Must delete at least one entry\n");
			return -EINVAL;
		}

		ret = ima_queue_delete_partial(req_value);
	}

	if (ret < 0)
		return ret;

	return datalen;
}

static int ima_dump_measurement(struct seq_file *sf, struct ima_kexec_hdr *khdr,
				struct ima_queue_entry *qe)
{
	if (sf->count >= sf->size)
		return -EINVAL;

	khdr->count++;
	ima_measurements_show_entry(sf, qe->entry);
	return 0;
}

int ima_list_kexec_serialize(void *buf, size_t size, bool canonical,
			     size_t *used)
{
	struct seq_file sf = { .buf = buf, .size = size,
			       .count = sizeof(struct ima_kexec_hdr) };
	struct ima_queue_entry *qe;
	struct ima_kexec_hdr khdr;
	int ret = 0;

	memset(&khdr, 0, sizeof(khdr));
	khdr.version = 1;
	/*
	 * Lockless walks possible due to strict ordering of the reboot
	 * notifiers, suspending measurement before dump, and forbidding
	 * staging/deleting (list mutations) after suspend.
	 */
	list_for_each_entry(qe, &ima_measurements_staged, later) {
		ret = ima_dump_measurement(&sf, &khdr, qe);
		if (ret < 0)
			break;
	}

	list_for_each_entry(qe, &ima_measurements, later) {
		if (!ret)
			ret = ima_dump_measurement(&sf, &khdr, qe);
		if (ret < 0)
			break;
	}

	/*
	 * fill in reserved space with some buffer details
	 * (eg. version, buffer size, number of measurements)
	 */
	khdr.buffer_size = sf.count;
	if (canonical) {
		khdr.version = cpu_to_le16(khdr.version);
		khdr.count = cpu_to_le64(khdr.count);
		khdr.buffer_size = cpu_to_le64(khdr.buffer_size);
	}
	memcpy(buf, &khdr, sizeof(khdr));
	*used = sf.count;
	return ret;
}
