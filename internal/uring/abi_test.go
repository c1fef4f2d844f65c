package uring

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The expected values are those of include/uapi/linux/io_uring.h: the
// kernel and this package must agree on every byte.
func TestABILayout(t *testing.T) {
	var s SQE
	assert.EqualValues(t, 64, unsafe.Sizeof(s), "sizeof(struct io_uring_sqe)")
	for name, got := range map[string][2]uintptr{
		"opcode":      {unsafe.Offsetof(s.Opcode), 0},
		"flags":       {unsafe.Offsetof(s.Flags), 1},
		"ioprio":      {unsafe.Offsetof(s.IOPrio), 2},
		"fd":          {unsafe.Offsetof(s.Fd), 4},
		"off":         {unsafe.Offsetof(s.Off), 8},
		"addr":        {unsafe.Offsetof(s.Addr), 16},
		"len":         {unsafe.Offsetof(s.Len), 24},
		"rw_flags":    {unsafe.Offsetof(s.OpFlags), 28},
		"user_data":   {unsafe.Offsetof(s.UserData), 32},
		"buf_index":   {unsafe.Offsetof(s.BufIndex), 40},
		"personality": {unsafe.Offsetof(s.Personality), 42},
		"file_index":  {unsafe.Offsetof(s.FileIndex), 44},
		"addr3":       {unsafe.Offsetof(s.Addr3), 48},
	} {
		assert.Equal(t, got[1], got[0], "offsetof(io_uring_sqe.%s)", name)
	}

	var c CQE
	assert.EqualValues(t, 16, unsafe.Sizeof(c), "sizeof(struct io_uring_cqe)")
	assert.EqualValues(t, 0, unsafe.Offsetof(c.UserData))
	assert.EqualValues(t, 8, unsafe.Offsetof(c.Res))
	assert.EqualValues(t, 12, unsafe.Offsetof(c.Flags))

	var p Params
	assert.EqualValues(t, 120, unsafe.Sizeof(p), "sizeof(struct io_uring_params)")
	assert.EqualValues(t, 20, unsafe.Offsetof(p.Features))
	assert.EqualValues(t, 24, unsafe.Offsetof(p.WQFd))
	assert.EqualValues(t, 40, unsafe.Offsetof(p.SQOff))
	assert.EqualValues(t, 80, unsafe.Offsetof(p.CQOff))
	assert.EqualValues(t, 40, unsafe.Sizeof(SQRingOffsets{}))
	assert.EqualValues(t, 40, unsafe.Sizeof(CQRingOffsets{}))
	assert.EqualValues(t, 24, unsafe.Offsetof(p.SQOff.Array))
	assert.EqualValues(t, 32, unsafe.Offsetof(p.SQOff.UserAddr))
	assert.EqualValues(t, 20, unsafe.Offsetof(p.CQOff.CQEs))
	assert.EqualValues(t, 24, unsafe.Offsetof(p.CQOff.Flags))

	assert.EqualValues(t, 8, unsafe.Sizeof(ProbeOp{}))
	assert.EqualValues(t, 16, unsafe.Offsetof(Probe{}.Ops), "sizeof(struct io_uring_probe)")
	assert.EqualValues(t, 16, unsafe.Sizeof(Timespec{}))
	assert.EqualValues(t, 16, unsafe.Sizeof(FilesUpdate{}))
	assert.EqualValues(t, 40, unsafe.Sizeof(BufReg{}), "sizeof(struct io_uring_buf_reg)")
	assert.EqualValues(t, 16, unsafe.Sizeof(RecvmsgOut{}), "sizeof(struct io_uring_recvmsg_out)")
	assert.EqualValues(t, 12, unsafe.Offsetof(BufReg{}.Bgid))

	// A few opcodes from the middle and the end of the enum, where a
	// missing entry would shift everything after it.
	assert.EqualValues(t, 14, OpAsyncCancel)
	assert.EqualValues(t, 22, OpRead)
	assert.EqualValues(t, 35, OpRenameat)
	assert.EqualValues(t, 47, OpSendZC)
	assert.EqualValues(t, 55, OpFtruncate)
	assert.EqualValues(t, 57, OpListen)
}

func TestSetupAndMap(t *testing.T) {
	var p Params
	fd, err := Setup(4, &p)
	require.NoError(t, err, "io_uring_setup")
	r, err := Map(fd, &p)
	require.NoError(t, err)
	defer func() {
		r.Unmap()
		_ = closeFd(fd)
	}()
	assert.EqualValues(t, 4, r.SQEntries)
	assert.EqualValues(t, 8, r.CQEntries)
	assert.EqualValues(t, 3, r.SQMask)

	// One NOP through the raw ring.
	r.SQEs[0] = SQE{Opcode: OpNop, UserData: 0xfeedface}
	StoreRelease(r.SQTail, 1)
	n, errno := Enter(fd, 1, 1, EnterGetEvents)
	require.Zero(t, errno, "io_uring_enter = %d, %v", n, errno)
	require.Equal(t, 1, n, "io_uring_enter = %d, %v", n, errno)
	require.EqualValues(t, 1, LoadAcquire(r.CQTail), "no CQE")
	cqe := r.CQEs[0]
	assert.Equal(t, CQE{UserData: 0xfeedface}, cqe)
	StoreRelease(r.CQHead, 1)

	var probe Probe
	_, err = Register(fd, RegisterProbe, unsafe.Pointer(&probe), 256)
	require.NoError(t, err)
	assert.True(t, probe.Supported(OpNop))
	assert.False(t, probe.Supported(255))
}
