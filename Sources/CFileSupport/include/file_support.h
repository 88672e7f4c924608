/* Linux file-system calls that Swift's Glibc module does not offer (they need _GNU_SOURCE).
 * Both return 0, or -1 with errno set; neither keeps anything. */
#ifndef MS_FILE_SUPPORT_H
#define MS_FILE_SUPPORT_H

#ifdef __cplusplus
extern "C" {
#endif

/* Swaps the paths `a` and `b` in one step (renameat2 with RENAME_EXCHANGE): both must exist, on one
 * file system; neither name is ever missing, even if the process dies. EXDEV, EBUSY (a mount point),
 * EINVAL (the file system cannot exchange) as rename(2) and renameat2(2) say. */
int ms_rename_exchange(const char *a, const char *b);

/* Writes out the file system that holds the open file or folder `fd` (syncfs(2)). */
int ms_syncfs(int fd);

#ifdef __cplusplus
}
#endif

#endif
