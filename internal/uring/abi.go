// Package uring holds the io_uring kernel ABI: the structures shared with the
// kernel, the IORING_* constants, the raw system calls and the mapping of the
// ring memory. It is internal: the public API lives in package rio, which is
// the only place that decides what goes into a submission queue entry.
//
// The layouts follow include/uapi/linux/io_uring.h. abi_test.go checks every
// size and field offset against the values in that header.
package uring

// SQE is a submission queue entry (struct io_uring_sqe), 64 bytes.
//
// The kernel header declares most fields as unions; this type names each slot
// after its most common use and documents the alternatives. Op encoders in
// package rio set the slots explicitly, so that no field bleeds into another.
type SQE struct {
	Opcode      Op     // enum io_uring_op
	Flags       uint8  // IOSQE_* flags
	IOPrio      uint16 // ioprio; also accept/recv/send flags (IORING_ACCEPT_*, IORING_RECVSEND_*)
	Fd          int32  // file descriptor, or index when IOSQE_FIXED_FILE is set
	Off         uint64 // off; addr2 (statx buffer, rename new path); cmd_op
	Addr        uint64 // addr (buffer, iovec, path, timespec); splice_off_in; cancel target
	Len         uint32 // len (bytes, iovec count, mode, new dirfd)
	OpFlags     uint32 // rw_flags, fsync_flags, poll32_events, timeout_flags, open_flags, ...
	UserData    uint64 // returned unchanged in the CQE
	BufIndex    uint16 // buf_index (fixed buffers) or buf_group (provided buffers)
	Personality uint16
	FileIndex   uint32 // file_index (direct descriptors), splice_fd_in, addr_len
	Addr3       uint64 // addr3
	_           uint64 // __pad2
}

// CQE is a completion queue entry (struct io_uring_cqe), 16 bytes.
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// SQRingOffsets is struct io_sqring_offsets.
type SQRingOffsets struct {
	Head        uint32
	Tail        uint32
	RingMask    uint32
	RingEntries uint32
	Flags       uint32
	Dropped     uint32
	Array       uint32
	Resv1       uint32
	UserAddr    uint64
}

// CQRingOffsets is struct io_cqring_offsets.
type CQRingOffsets struct {
	Head        uint32
	Tail        uint32
	RingMask    uint32
	RingEntries uint32
	Overflow    uint32
	CQEs        uint32
	Flags       uint32
	Resv1       uint32
	UserAddr    uint64
}

// Params is struct io_uring_params, passed to io_uring_setup.
type Params struct {
	SQEntries    uint32
	CQEntries    uint32
	Flags        uint32
	SQThreadCPU  uint32
	SQThreadIdle uint32
	Features     uint32
	WQFd         uint32
	Resv         [3]uint32
	SQOff        SQRingOffsets
	CQOff        CQRingOffsets
}

// ProbeOp is struct io_uring_probe_op.
type ProbeOp struct {
	Op    uint8
	Resv  uint8
	Flags uint16
	Resv2 uint32
}

// Probe is struct io_uring_probe followed by room for every opcode.
type Probe struct {
	LastOp Op
	OpsLen uint8
	Resv   uint16
	Resv2  [3]uint32
	Ops    [256]ProbeOp
}

// Supported reports whether the kernel that filled p knows opcode op.
func (p *Probe) Supported(op Op) bool {
	if op > p.LastOp || int(op) >= int(p.OpsLen) {
		return false
	}
	return p.Ops[op].Flags&OpSupported != 0
}

// Timespec is struct __kernel_timespec.
type Timespec struct {
	Sec  int64
	Nsec int64
}

// BufReg is struct io_uring_buf_reg, for IORING_(UN)REGISTER_PBUF_RING.
type BufReg struct {
	RingAddr    uint64
	RingEntries uint32
	Bgid        uint16
	Flags       uint16
	Resv        [3]uint64
}

// RecvmsgOut is struct io_uring_recvmsg_out, which a multishot recvmsg
// writes at the start of each buffer it fills, before the name, the
// control data and the payload.
type RecvmsgOut struct {
	Namelen    uint32
	Controllen uint32
	Payloadlen uint32
	Flags      uint32
}

// FilesUpdate is struct io_uring_files_update.
type FilesUpdate struct {
	Offset uint32
	Resv   uint32
	Fds    uint64 // pointer to an array of int32
}

// Setup flags (io_uring_params.flags).
const (
	SetupIOPoll           = 1 << 0
	SetupSQPoll           = 1 << 1
	SetupSQAff            = 1 << 2
	SetupCQSize           = 1 << 3
	SetupClamp            = 1 << 4
	SetupAttachWQ         = 1 << 5
	SetupRDisabled        = 1 << 6
	SetupSubmitAll        = 1 << 7
	SetupCoopTaskrun      = 1 << 8
	SetupTaskrunFlag      = 1 << 9
	SetupSQE128           = 1 << 10
	SetupCQE32            = 1 << 11
	SetupSingleIssuer     = 1 << 12
	SetupDeferTaskrun     = 1 << 13
	SetupNoMmap           = 1 << 14
	SetupRegisteredFdOnly = 1 << 15
	SetupNoSQArray        = 1 << 16
)

// Features reported by the kernel (io_uring_params.features).
const (
	FeatSingleMmap     = 1 << 0
	FeatNoDrop         = 1 << 1
	FeatSubmitStable   = 1 << 2
	FeatRWCurPos       = 1 << 3
	FeatCurPersonality = 1 << 4
	FeatFastPoll       = 1 << 5
	FeatPoll32Bits     = 1 << 6
	FeatSQPollNonfixed = 1 << 7
	FeatExtArg         = 1 << 8
	FeatNativeWorkers  = 1 << 9
	FeatRsrcTags       = 1 << 10
	FeatCQESkip        = 1 << 11
	FeatLinkedFile     = 1 << 12
	FeatRegRegRing     = 1 << 13
	FeatRecvSendBundle = 1 << 14
	FeatMinTimeout     = 1 << 15
)

// SQE flags (io_uring_sqe.flags).
const (
	SQEFixedFile      = 1 << 0
	SQEIODrain        = 1 << 1
	SQEIOLink         = 1 << 2
	SQEIOHardlink     = 1 << 3
	SQEAsync          = 1 << 4
	SQEBufferSelect   = 1 << 5
	SQECQESkipSuccess = 1 << 6
)

// Op is an io_uring operation code (enum io_uring_op), as an SQE carries
// it and as the kernel's probe (IORING_REGISTER_PROBE) reports it.
type Op uint8

// The operation codes, in the kernel's order (enum io_uring_op).
const (
	OpNop Op = iota
	OpReadv
	OpWritev
	OpFsync
	OpReadFixed
	OpWriteFixed
	OpPollAdd
	OpPollRemove
	OpSyncFileRange
	OpSendmsg
	OpRecvmsg
	OpTimeout
	OpTimeoutRemove
	OpAccept
	OpAsyncCancel
	OpLinkTimeout
	OpConnect
	OpFallocate
	OpOpenat
	OpClose
	OpFilesUpdate
	OpStatx
	OpRead
	OpWrite
	OpFadvise
	OpMadvise
	OpSend
	OpRecv
	OpOpenat2
	OpEpollCtl
	OpSplice
	OpProvideBuffers
	OpRemoveBuffers
	OpTee
	OpShutdown
	OpRenameat
	OpUnlinkat
	OpMkdirat
	OpSymlinkat
	OpLinkat
	OpMsgRing
	OpFsetxattr
	OpSetxattr
	OpFgetxattr
	OpGetxattr
	OpSocket
	OpUringCmd
	OpSendZC
	OpSendmsgZC
	OpReadMultishot
	OpWaitid
	OpFutexWait
	OpFutexWake
	OpFutexWaitv
	OpFixedFdInstall
	OpFtruncate
	OpBind
	OpListen
)

// io_uring_enter flags.
const (
	EnterGetEvents      = 1 << 0
	EnterSQWakeup       = 1 << 1
	EnterSQWait         = 1 << 2
	EnterExtArg         = 1 << 3
	EnterRegisteredRing = 1 << 4
)

// SQ ring flags (written by the kernel).
const (
	SQNeedWakeup = 1 << 0
	SQCQOverflow = 1 << 1
	SQTaskrun    = 1 << 2
)

// CQ ring flags (written by the application).
const (
	CQEventfdDisabled = 1 << 0
)

// CQE flags.
const (
	CQEFBuffer       = 1 << 0
	CQEFMore         = 1 << 1
	CQEFSockNonempty = 1 << 2
	CQEFNotif        = 1 << 3
	CQEBufferShift   = 16
)

// mmap offsets.
const (
	OffSQRing = 0
	OffCQRing = 0x8000000
	OffSQEs   = 0x10000000
)

// io_uring_register opcodes.
const (
	RegisterBuffers        = 0
	UnregisterBuffers      = 1
	RegisterFiles          = 2
	UnregisterFiles        = 3
	RegisterEventfd        = 4
	UnregisterEventfd      = 5
	RegisterFilesUpdate    = 6
	RegisterEventfdAsync   = 7
	RegisterProbe          = 8
	RegisterPersonality    = 9
	UnregisterPersonality  = 10
	RegisterRestrictions   = 11
	RegisterEnableRings    = 12
	RegisterIOWQMaxWorkers = 19
	RegisterRingFds        = 20
	UnregisterRingFds      = 21
	RegisterPbufRing       = 22
	UnregisterPbufRing     = 23
	RegisterSyncCancel     = 24
)

// Probe op flags.
const OpSupported = 1 << 0

// Per-op flags.
const (
	FsyncDatasync = 1 << 0

	TimeoutAbs          = 1 << 0
	TimeoutUpdate       = 1 << 1
	TimeoutBoottime     = 1 << 2
	TimeoutRealtime     = 1 << 3
	LinkTimeoutUpdate   = 1 << 4
	TimeoutETimeSuccess = 1 << 5
	TimeoutMultishot    = 1 << 6

	AsyncCancelAll      = 1 << 0
	AsyncCancelFd       = 1 << 1
	AsyncCancelAny      = 1 << 2
	AsyncCancelFdFixed  = 1 << 3
	AsyncCancelUserdata = 1 << 4
	AsyncCancelOp       = 1 << 5

	PollAddMulti = 1 << 0

	AcceptMultishot = 1 << 0

	RecvsendPollFirst = 1 << 0
	RecvMultishot     = 1 << 1

	// FileIndexAlloc asks the kernel to pick a free direct descriptor slot.
	FileIndexAlloc = ^uint32(0)
)
