// Leaving a source's page cache as a transfer found it. A transfer reads each
// source byte once: pages it brought into the cache serve nobody afterwards,
// yet they push out what the node's users had cached, and every one of them is
// memory the kernel had to find (on a VM whose free memory the host has taken
// back, memory the host must back again, at several times the cost of the read).
// Ranges that were not cached before the transfer read them are dropped once
// sent; ranges that were cached (someone uses them) are left alone
// (docs/decisions/0021-leave-the-source-cache-as-found.md).
#pragma once

#include <cstdint>

#include "dms/file.hpp"

namespace dms {

// Ranges shorter than this are left in the cache: checking and dropping them
// costs more system calls than the few pages are worth.
constexpr uint64_t kDropMinBytes = 1ull << 20;

// True when none of [off, off + len) of `f` is in the page cache (mincore over
// a mapping that is never touched). False when any page is, and when that
// cannot be told (the file cannot be mapped): then nothing will be dropped.
bool range_uncached(const File& f, uint64_t off, uint64_t len) noexcept;

// Asks the kernel to drop [off, off + len) of `f` from the page cache (clean
// pages only; pages still in use elsewhere, such as in a socket, stay).
void drop_cached(const File& f, uint64_t off, uint64_t len) noexcept;

}  // namespace dms
