/*
 * A stand-in for bootmgfw.efi in the tests that boot an image under OVMF.
 *
 * The firmware starts it as it would start Windows' boot manager. It prints one line on the
 * console (OVMF copies the console to the serial port), naming the file path the firmware
 * loaded it from, as the loaded image protocol reports it, then turns the machine off, so
 * that QEMU exits by itself:
 *
 *     REHOST-STANDIN loaded-from=\EFI\Microsoft\Boot\bootmgfw.efi
 *
 * The one binary serves as \EFI\Microsoft\Boot\bootmgfw.efi and as \EFI\Boot\bootx64.efi
 * (as Windows' own boot manager does, copied to both): the line says which copy ran.
 *
 * Only the few UEFI structures it touches are declared, from the UEFI specification
 * (section 4, the system table; 7, boot services; 8, runtime services; 9, the loaded image
 * protocol; 10, device paths; 12, the simple text output protocol). Built freestanding as a
 * PE32+ EFI application (subsystem 10) by tests/common/ovmf.rs.
 */

typedef unsigned char UINT8;
typedef unsigned short UINT16;
typedef unsigned int UINT32;
typedef unsigned long long UINT64;
typedef unsigned long long UINTN;
typedef UINTN EFI_STATUS;
typedef void *EFI_HANDLE;
typedef UINT16 CHAR16;

typedef struct {
    UINT32 Data1;
    UINT16 Data2;
    UINT16 Data3;
    UINT8 Data4[8];
} EFI_GUID;

typedef struct {
    UINT64 Signature;
    UINT32 Revision;
    UINT32 HeaderSize;
    UINT32 CRC32;
    UINT32 Reserved;
} EFI_TABLE_HEADER;

typedef struct SIMPLE_TEXT_OUTPUT {
    EFI_STATUS (*Reset)(struct SIMPLE_TEXT_OUTPUT *This, UINT8 ExtendedVerification);
    EFI_STATUS (*OutputString)(struct SIMPLE_TEXT_OUTPUT *This, const CHAR16 *String);
} SIMPLE_TEXT_OUTPUT;

typedef enum { EfiResetCold, EfiResetWarm, EfiResetShutdown } EFI_RESET_TYPE;

typedef struct {
    EFI_TABLE_HEADER Hdr;
    /* GetTime .. GetNextHighMonotonicCount: ten services this program does not call. */
    void *Unused[10];
    void (*ResetSystem)(EFI_RESET_TYPE ResetType, EFI_STATUS ResetStatus, UINTN DataSize,
                        void *ResetData);
} EFI_RUNTIME_SERVICES;

typedef struct {
    EFI_TABLE_HEADER Hdr;
    /* RaiseTPL .. UninstallProtocolInterface: sixteen services this program does not call. */
    void *Unused[16];
    EFI_STATUS (*HandleProtocol)(EFI_HANDLE Handle, const EFI_GUID *Protocol, void **Interface);
    void *Reserved;
    void *RegisterProtocolNotify;
    void *LocateHandle;
    void *LocateDevicePath;
    void *InstallConfigurationTable;
    void *LoadImage;
    void *StartImage;
    void *Exit;
    void *UnloadImage;
    void *ExitBootServices;
    void *GetNextMonotonicCount;
    EFI_STATUS (*Stall)(UINTN Microseconds);
} EFI_BOOT_SERVICES;

typedef struct {
    EFI_TABLE_HEADER Hdr;
    CHAR16 *FirmwareVendor;
    UINT32 FirmwareRevision;
    EFI_HANDLE ConsoleInHandle;
    void *ConIn;
    EFI_HANDLE ConsoleOutHandle;
    SIMPLE_TEXT_OUTPUT *ConOut;
    EFI_HANDLE StandardErrorHandle;
    SIMPLE_TEXT_OUTPUT *StdErr;
    EFI_RUNTIME_SERVICES *RuntimeServices;
    EFI_BOOT_SERVICES *BootServices;
} EFI_SYSTEM_TABLE;

/* A device path node: Type, SubType, a 16-bit little-endian length, then its data. */
typedef struct {
    UINT8 Type;
    UINT8 SubType;
    UINT8 Length[2];
} EFI_DEVICE_PATH;

typedef struct {
    UINT32 Revision;
    EFI_HANDLE ParentHandle;
    EFI_SYSTEM_TABLE *SystemTable;
    EFI_HANDLE DeviceHandle;
    EFI_DEVICE_PATH *FilePath;
} EFI_LOADED_IMAGE;

static const EFI_GUID loaded_image_guid = {
    0x5b1b31a1, 0x9562, 0x11d2, {0x8e, 0x3f, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b}};

enum { MEDIA_DEVICE_PATH = 4, MEDIA_FILEPATH_DP = 4, END_DEVICE_PATH = 0x7f };

/* Room for the line: the prefix, a path of up to 255 characters, CR LF and the end. */
#define LINE_MAX 300

static UINTN append(CHAR16 *line, UINTN at, const CHAR16 *text, UINTN count)
{
    for (UINTN i = 0; i < count && text[i] != 0 && at < LINE_MAX - 3; i++)
        line[at++] = text[i];
    return at;
}

/* Appends the text of every file path node of a device path (at most 64 nodes). */
static UINTN append_file_path(CHAR16 *line, UINTN at, const EFI_DEVICE_PATH *node)
{
    for (int n = 0; node != 0 && n < 64 && node->Type != END_DEVICE_PATH; n++) {
        UINTN length = node->Length[0] | (UINTN)node->Length[1] << 8;
        if (length < sizeof(EFI_DEVICE_PATH))
            break;
        if (node->Type == MEDIA_DEVICE_PATH && node->SubType == MEDIA_FILEPATH_DP) {
            const CHAR16 *name = (const CHAR16 *)(node + 1);
            at = append(line, at, name, (length - sizeof(EFI_DEVICE_PATH)) / 2);
        }
        node = (const EFI_DEVICE_PATH *)((const UINT8 *)node + length);
    }
    return at;
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *system_table)
{
    static CHAR16 line[LINE_MAX];
    UINTN at = 0;
    EFI_LOADED_IMAGE *loaded = 0;

    at = append(line, at, L"\r\nREHOST-STANDIN loaded-from=", LINE_MAX);
    if (system_table->BootServices->HandleProtocol(image, &loaded_image_guid, (void **)&loaded) == 0
        && loaded != 0)
        at = append_file_path(line, at, loaded->FilePath);
    else
        at = append(line, at, L"?", 1);
    line[at++] = L'\r';
    line[at++] = L'\n';
    line[at] = 0;
    system_table->ConOut->OutputString(system_table->ConOut, line);
    /* Let the serial terminal drain before the machine goes off. */
    system_table->BootServices->Stall(100000);
    system_table->RuntimeServices->ResetSystem(EfiResetShutdown, 0, 0, 0);
    return 0;
}
