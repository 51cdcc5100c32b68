module nkvm.local/nkvm-runc

go 1.24.0
